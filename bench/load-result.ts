// The one JSON line a JavaScript load generator (bench/loadgen.ts, bench/ws-loadgen.ts) prints for
// bench/proxy.ts: what wrk's output is parsed into.

/** `latencies`: each request's (or round trip's) milliseconds, in any order; `seconds`: the run's length. */
export function printLoadResult (latencies: number[], seconds: number, counts: { non2xx: number, errors: number }): void {
  latencies.sort((a, b) => a - b)
  const pct = (p: number): number => latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p / 100))]!
  process.stdout.write(JSON.stringify({
    requests: latencies.length,
    rps: latencies.length / seconds,
    latencyMs: { p50: pct(50), p75: pct(75), p90: pct(90), p99: pct(99) },
    ...counts
  }) + '\n')
}
