-- wrk script: POST /v1/organizations/$ORG/api-keys with the root key: one durable write each.
local org, root = os.getenv("ORG"), os.getenv("ROOT")
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/organizations/" .. org .. "/api-keys",
    { ["Authorization"] = "Bearer " .. root, ["Content-Type"] = "application/json" },
    '{"name":"bench ' .. n .. '"}')
end
