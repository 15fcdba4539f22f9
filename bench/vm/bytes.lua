-- bytes.lua - build a string of N times "abc" (Lua's idiom: a table of
-- pieces and one table.concat).
local n, expect = tonumber(arg[1]), tonumber(arg[2])
local t = {}
for i = 1, n do t[i] = "abc" end
local s = table.concat(t)
assert(#s == expect, "the length is wrong")
