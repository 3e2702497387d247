-- wrk script: POST a small JSON body to /score and print a machine-readable summary line.
wrk.method = "POST"
wrk.body = '{"data": [[1.0, 2.0, 3.0, 4.0]]}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("WRK_SUMMARY requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors,
    summary.errors.status))
end
