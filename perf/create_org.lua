-- wrk script: POST /v1/organizations with the root key, a new name each time (a slug each):
-- one durable write each. Names carry the start time, so that runs differ.
local root = os.getenv("ROOT")
local n = 0
math.randomseed(os.time())
local tag = os.time() .. "-" .. math.random(1, 1e9)
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/organizations",
    { ["Authorization"] = "Bearer " .. root, ["Content-Type"] = "application/json" },
    '{"name":"org ' .. tag .. ' ' .. n .. '"}')
end
