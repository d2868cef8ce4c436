-- wrk script: GET /v1/auth, each request with the next key of a file (one per line), and
-- PIPELINE requests per write (default 1). Usage:
--   KEYS=/tmp/keys.txt PIPELINE=16 wrk -t1 -c64 -d10s -s perf/auth.lua http://127.0.0.1:8080
--
-- Every write is built once, in init, before wrk starts its clock: request() only hands
-- out the next prebuilt string. Formatting requests in Lua on every call made wrk's own
-- core the ceiling of the benchmark (both servers then wait on it and the ratios measure
-- the load generator); this way the only per-request cost on wrk's side is its I/O and
-- response parsing. Costs about 150 bytes of wrk memory per key and thread.
local writes, count, next_write = {}, 0, 0
local depth = tonumber(os.getenv("PIPELINE") or "1")

-- Runs in wrk's main Lua state once per thread, before that thread's init.
local threads = 0
setup = function(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

init = function(args)
  local path = os.getenv("KEYS")
  local one = {}
  for line in io.lines(path) do
    one[#one + 1] = wrk.format("GET", "/v1/auth", { ["Authorization"] = "Bearer " .. line })
  end
  local n = #one
  if n == 0 then error("no keys in " .. tostring(path)) end
  if depth == 1 then
    writes, count = one, n
  else
    -- ceil(n / depth) writes of `depth` requests each, wrapping around the key list, so
    -- every key is used and a write never repeats a key (when n >= depth).
    local batch, k = {}, 0
    for w = 1, math.ceil(n / depth) do
      for d = 1, depth do
        k = k % n + 1
        batch[d] = one[k]
      end
      writes[w] = table.concat(batch)
    end
    count = #writes
  end
  -- Threads (and repeated runs) start at different places in the key list.
  math.randomseed(os.time() + 7919 * (thread_index or 0))
  next_write = math.random(count) - 1
end

request = function()
  next_write = next_write % count + 1
  return writes[next_write]
end
