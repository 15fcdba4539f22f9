-- fib.lua - recursive fib(N), as bench/vm/fib.rasm
local function fib(n)
	if n < 2 then return n end
	return fib(n - 1) + fib(n - 2)
end
local n, expect = tonumber(arg[1]), tonumber(arg[2])
assert(fib(n) == expect, "fib gave a wrong result")
