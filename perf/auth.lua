-- wrk script: GET /v1/auth, each request with the next key of a file (one per line), and
-- PIPELINE requests per write (default 1). Usage:
--   KEYS=/tmp/keys.txt PIPELINE=16 wrk -t1 -c64 -d10s -s perf/auth.lua http://127.0.0.1:8080
local keys, n, i = {}, 0, 0
local depth = tonumber(os.getenv("PIPELINE") or "1")

init = function(args)
  local path = os.getenv("KEYS")
  for line in io.lines(path) do
    n = n + 1
    keys[n] = "Bearer " .. line
  end
  i = math.random(n)
end

local function one()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format("GET", "/v1/auth", { ["Authorization"] = keys[i] })
end

request = function()
  if depth == 1 then return one() end
  local batch = {}
  for d = 1, depth do batch[d] = one() end
  return table.concat(batch)
end
