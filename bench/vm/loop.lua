-- loop.lua - an integer loop of N iterations summing its counter.
local n, expect = tonumber(arg[1]), tonumber(arg[2])
local s = 0
for i = 0, n - 1 do s = s + i end
assert(s == expect, "the sum is wrong")
