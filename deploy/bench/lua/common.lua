-- Shared by the wrk scripts of deploy/bench/run.sh (loaded with dofile).
--
-- * counts responses that are not 2xx, per status, across all wrk threads, and keeps
--   the first such body as a sample;
-- * BENCH_RATE (total requests/s, optional) paces the requests: each wrk thread hands
--   out send slots BENCH_THREADS/BENCH_RATE seconds apart through wrk's delay() hook
--   (a poor man's wrk2: latency is measured from the actual send, so a slot missed
--   because every connection was busy is not counted as waiting time);
-- * done() prints one machine-readable line starting with "BENCH " for run.sh.
--
-- Environment: BENCH_TOKEN (required), BENCH_RATE, BENCH_THREADS.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]

local threads = {}

function setup(thread)
   thread:set("thread_no", #threads + 1)
   table.insert(threads, thread)
end

wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.headers["Accept"] = "application/json"

non2xx = 0
codes = {}
sample = ""

function init(args)
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
   if type(bench_init) == "function" then
      bench_init(args)
   end
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      codes[status] = (codes[status] or 0) + 1
      if sample == "" and body then
         sample = string.sub(body, 1, 400)
      end
   end
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2") or 2
if rate > 0 then
   local interval = 1000.0 * nthreads / rate -- ms between two sends of this thread
   local ts = ffi.new("bench_timespec")
   local next_slot = 0
   local function now_ms()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
   end
   function delay()
      local now = now_ms()
      if next_slot < now then
         next_slot = now -- behind schedule: no catch-up burst
      end
      local wait = next_slot - now
      next_slot = next_slot + interval
      return math.floor(wait + 0.5)
   end
end

function done(summary, latency, requests)
   local bad, merged, first = 0, {}, ""
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      for k, v in pairs(t:get("codes") or {}) do
         merged[k] = (merged[k] or 0) + v
      end
      local s = t:get("sample") or ""
      if first == "" then first = s end
   end
   local parts = {}
   for k, v in pairs(merged) do
      table.insert(parts, tostring(k) .. "x" .. tostring(v))
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d seconds=%.2f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d codes=%s socket_errors=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      bad, (#parts > 0) and table.concat(parts, ",") or "-",
      e.connect + e.read + e.write + e.timeout))
   if first ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(first, "\n", " ") .. "\n")
   end
end
