-- wrk script of scripts/bench_gateway.py: the request of one benchmark point, and its
-- result as one parseable line.
--
-- Environment (set by bench_gateway.py):
--   BENCH_METHOD   GET or POST (default GET)
--   BENCH_BODY     the request body, sent as application/json (POST only)
--   BENCH_COOKIE   the Cookie header (the session of the development login), optional
--   BENCH_CSRF     the X-Requested-With header value, optional (the gateway's CSRF check)
--
-- At the end it prints one line:
--   BENCH_RESULT {"requests": ..., "duration_us": ..., "latency_us": {"p50": ...}, ...}
-- Latencies are wrk's, in microseconds. "non_2xx" counts every answer outside 200-299
-- (wrk's own "status" error counts only >= 400); "socket" is wrk's connect, read,
-- write and timeout errors.

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")

wrk.method = method
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
if csrf and csrf ~= "" then
  wrk.headers["X-Requested-With"] = csrf
end
if method ~= "GET" and body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

-- Each wrk thread runs its own Lua state: count there, add up in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non_2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local non_2xx_total = 0
  for _, thread in ipairs(threads) do
    non_2xx_total = non_2xx_total + (thread:get("non_2xx") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}, '
      .. '"errors": {"non_2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    non_2xx_total, errors.connect, errors.read, errors.write, errors.timeout
  ))
end
