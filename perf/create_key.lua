-- wrk script: POST /v1/organizations/<org>/api-keys with the root key: one durable write each.
-- ORG is one organization's id, or several separated by commas: requests go to each in turn.
local root = os.getenv("ROOT")
local orgs = {}
for id in string.gmatch(os.getenv("ORG"), "[^,]+") do orgs[#orgs + 1] = id end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/organizations/" .. orgs[n % #orgs + 1] .. "/api-keys",
    { ["Authorization"] = "Bearer " .. root, ["Content-Type"] = "application/json" },
    '{"name":"bench ' .. n .. '"}')
end
