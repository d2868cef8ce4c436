-- wrk script: GET /metrics on one keep-alive connection every SCRAPE_MS milliseconds
-- (default 100), as a Prometheus server scraping far more often than usual would.
--   SCRAPE_MS=100 wrk -t1 -c1 -d10s -s perf/scrape.lua http://127.0.0.1:8080
local interval = tonumber(os.getenv("SCRAPE_MS") or "100")
request = function() return wrk.format("GET", "/metrics") end
delay = function() return interval end
