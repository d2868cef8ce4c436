-- wrk script: key churn in one organization, every request a durable write. Each
-- connection cycles: create a key, rotate it, revoke the new key (the rotated one expires
-- with its grace period). ORG and ROOT from the environment.
--   ORG=org_... ROOT=$(cat data/root.key) wrk -t1 -c64 -d10s -s perf/churn.lua http://127.0.0.1:8080
local org, root = os.getenv("ORG"), os.getenv("ROOT")
local headers = { ["Authorization"] = "Bearer " .. root, ["Content-Type"] = "application/json" }
local base = "/v1/organizations/" .. org .. "/api-keys"
local n = 0
local to_rotate, to_revoke = {}, {}

request = function()
  n = n + 1
  if #to_revoke > 0 then
    local id = table.remove(to_revoke)
    return wrk.format("DELETE", base .. "/" .. id, headers)
  elseif #to_rotate > 0 then
    local id = table.remove(to_rotate)
    return wrk.format("POST", base .. "/" .. id .. "/rotations", headers, '{"grace_period_seconds":0}')
  end
  return wrk.format("POST", base, headers, '{"name":"churn ' .. n .. '"}')
end

-- A 201 is a new key: a creation's (rotated_from null) is rotated next, a rotation's revoked.
response = function(status, hdrs, body)
  if status ~= 201 then return end
  local id = body:match('"data":{"id":"(key_%w+)"')
  if not id then return end
  if body:find('"rotated_from":null', 1, true) then table.insert(to_rotate, id)
  else table.insert(to_revoke, id) end
end
