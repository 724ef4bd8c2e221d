// The arithmetic and the tables of `npm run bench` (bench/proxy.ts): medians over the rounds of the
// ratios taken within each round, the latency the proxy adds over the origin, and the issue-16
// targets evaluated as met or gap. Pure functions of the runs, so that the report can be re-made
// from a results JSON.

export interface LoadResult { requests: number, rps: number, latencyMs: { p50: number, p75: number, p90: number, p99: number }, non2xx: number, errors: number }

export interface Run {
  rep: number
  target: string
  result: LoadResult
  /** utime + stime of the target's process tree during the run, per request (µs). */
  cpuUsPerReq: number | undefined
  /** The origin's, per request (µs): a check that the origin was not the bottleneck. */
  originCpuUsPerReq: number | undefined
  /** The highest resident set of the target's process tree sampled during the run. */
  rssMaxBytes: number | undefined
  /** Bytes the gateway logged per request (its stdout), for the gateway targets. */
  logBytesPerReq: number | undefined
  loadavg: string
}

export interface TargetInfo {
  name: string
  kind: 'http' | 'ws'
  label: string
  /** The target's process tree after start-up and a settle, before any load (shared by targets served by one process). */
  rssIdleBytes: number | undefined
}

/** The gateway's own rows, that every other row of its kind is divided into. */
export const GATEWAY = { http: 'authgate', ws: 'ws-authgate' } as const
/** The rows that latency is added over. */
export const BASELINE = { http: 'origin', ws: 'ws-origin' } as const

export interface Row {
  target: string
  kind: 'http' | 'ws'
  label: string
  rps: number
  /** The gateway's requests/s ÷ this target's, within each round; the median over the rounds. */
  gatewayRatio: number
  p50: number
  p99: number
  /** p99 − the origin's p99 in the same round; the median over the rounds. */
  p99Added: number
  cpuUsPerReq: number
  originCpuUsPerReq: number
  rssIdleMiB: number
  rssLoadMiB: number
  logBytesPerReq: number
  unexpected: number
  socketErrors: number
}

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const MiB = (bytes: number | undefined): number => bytes === undefined ? NaN : bytes / 1048576
export const fmt = (n: number, digits = 0): string => Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—'

/** Per target, the medians over the rounds. */
export function summarise (targets: TargetInfo[], runs: Run[]): Row[] {
  const inRound = (name: string, rep: number): Run | undefined => runs.find((r) => r.target === name && r.rep === rep)
  return targets.map((t) => {
    const rs = runs.filter((r) => r.target === t.name)
    const m = (f: (r: Run) => number | undefined): number => median(rs.map(f).filter((x): x is number => x !== undefined))
    const versus = (other: string, f: (mine: Run, theirs: Run) => number): number => median(rs.flatMap((r) => {
      const o = inRound(other, r.rep)
      return o === undefined ? [] : [f(r, o)]
    }))
    const rssLoad = Math.max(...rs.map((r) => r.rssMaxBytes ?? NaN))
    return {
      target: t.name,
      kind: t.kind,
      label: t.label,
      rps: m((r) => r.result.rps),
      gatewayRatio: versus(GATEWAY[t.kind], (mine, gateway) => gateway.result.rps / mine.result.rps),
      p50: m((r) => r.result.latencyMs.p50),
      p99: m((r) => r.result.latencyMs.p99),
      p99Added: versus(BASELINE[t.kind], (mine, origin) => mine.result.latencyMs.p99 - origin.result.latencyMs.p99),
      cpuUsPerReq: m((r) => r.cpuUsPerReq),
      originCpuUsPerReq: m((r) => r.originCpuUsPerReq),
      rssIdleMiB: MiB(t.rssIdleBytes),
      rssLoadMiB: MiB(Number.isFinite(rssLoad) ? rssLoad : undefined),
      logBytesPerReq: m((r) => r.logBytesPerReq),
      unexpected: rs.reduce((a, r) => a + r.result.non2xx, 0),
      socketErrors: rs.reduce((a, r) => a + r.result.errors, 0)
    }
  })
}

export interface Goal { goal: string, measured: string, verdict: string }

/** Issue 16's targets, each met, a gap (how far), or not measured (and why). */
export function evaluateGoals (rows: Row[], skipped: Map<string, string>): Goal[] {
  const row = (name: string): Row | undefined => rows.find((r) => r.target === name)
  const gateway = row(GATEWAY.http)
  const notMeasured = (name: string): Goal['verdict'] => `not measured (${skipped.get(name) ?? `target ${name} not run`})`
  const ratio = (name: string, label: string, atLeast: number): Goal => {
    const r = row(name)
    const value = r?.gatewayRatio ?? NaN
    return {
      goal: `authgate ÷ ${label} ≥ ${fmt(atLeast, 2)}`,
      measured: fmt(value, 2),
      verdict: gateway === undefined ? notMeasured(GATEWAY.http) : r === undefined ? notMeasured(name) : value >= atLeast ? 'met' : `gap: ×${fmt(atLeast / value, 2)} more requests/s needed`
    }
  }
  const atMost = (goal: string, value: number | undefined, limit: number, unit: string, digits: number): Goal => ({
    goal: `${goal} ≤ ${fmt(limit, digits)} ${unit}`,
    measured: value === undefined ? '—' : `${fmt(value, digits)} ${unit}`,
    verdict: value === undefined || !Number.isFinite(value) ? notMeasured(gateway === undefined ? GATEWAY.http : BASELINE.http) : value <= limit ? 'met' : `gap: ${fmt(value - limit, digits)} ${unit} over`
  })
  return [
    ratio('caddy', 'Caddy', 1.3),
    ratio('stock', 'stock @fastify/http-proxy', 2),
    ratio('nginx', 'nginx', 0.5),
    atMost('p99 added over the origin', gateway?.p99Added, 2, 'ms', 2),
    atMost('RSS idle', gateway?.rssIdleMiB, 80, 'MiB', 1),
    atMost('RSS under load', gateway?.rssLoadMiB, 150, 'MiB', 1)
  ]
}

/** The tables, in Markdown, to paste into docs/PERFORMANCE.md. */
export function markdownTables (rows: Row[], goals: Goal[]): string {
  const http = rows.filter((r) => r.kind === 'http')
  const ws = rows.filter((r) => r.kind === 'ws')
  const rss = (r: Row): string => Number.isFinite(r.rssIdleMiB) || Number.isFinite(r.rssLoadMiB) ? `${fmt(r.rssIdleMiB, 1)} / ${fmt(r.rssLoadMiB, 1)}` : '—'
  const issues = (r: Row): string => r.unexpected + r.socketErrors === 0 ? '' : ` (${r.unexpected} unexpected statuses, ${r.socketErrors} socket errors)`
  const lines: string[] = []
  if (http.length > 0) {
    lines.push('| target | requests/s | authgate ÷ target | p50 ms | p99 ms | p99 added over origin, ms | CPU µs/request | RSS MiB idle / under load | log bytes/request |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...http.map((r) => `| ${r.target === GATEWAY.http ? `**${r.label}**` : r.label}${issues(r)} | ${fmt(r.rps)} | ${fmt(r.gatewayRatio, 2)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.target === BASELINE.http ? '' : fmt(r.p99Added, 2)} | ${fmt(r.cpuUsPerReq, 1)} | ${rss(r)} | ${fmt(r.logBytesPerReq)} |`))
  }
  if (ws.length > 0) {
    lines.push('', '| WebSocket echo, one message at a time per socket | round trips/s | authgate ÷ target | p50 ms | p99 ms | p99 added over direct, ms | CPU µs/round trip |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...ws.map((r) => `| ${r.label}${issues(r)} | ${fmt(r.rps)} | ${fmt(r.gatewayRatio, 2)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.target === BASELINE.ws ? '' : fmt(r.p99Added, 2)} | ${fmt(r.cpuUsPerReq, 1)} |`))
  }
  lines.push('', '| issue 16 target | measured | |', '| --- | ---: | --- |', ...goals.map((g) => `| ${g.goal} | ${g.measured} | ${g.verdict} |`))
  return lines.join('\n')
}
