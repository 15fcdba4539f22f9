-- pingpong.lua - N round trips between the main program and a coroutine
-- that yields back what it is given.
local n = tonumber(arg[1])
local co = coroutine.wrap(function(v) while true do v = coroutine.yield(v) end end)
local last
for i = 0, n - 1 do last = co(i) end
assert(last == n - 1, "the echo is wrong")
