// The proxy benchmark: how many requests per second, at what latency, the gateway passes to an
// upstream compared with the upstream served directly. See docs/PERFORMANCE.md.
//
//   npm run bench -- [--duration 10] [--reps 3] [--conc 16,64,256] [--targets list] [--pool json]...
//                    [--profile] [--json out.json]
//
// Every process gets its own CPU time: the upstream (bench/upstream.ts), each gateway
// (bench/gateway.ts) and the load generator (`wrk` when installed, else bench/loadgen.ts). Runs are
// interleaved (repetition → concurrency → target) so that a change in the machine's background
// load hits every target alike; the median of the repetitions is reported, with the ratio to the
// direct upstream at the same concurrency. On a shared machine prefer the ratios and the CPU time
// per request (read from /proc) to the absolute requests per second. `real-rules` is the real gateway
// with ten ACCESS_RULES; the report gives its ratio to `real` (and to `real-same-path`, the same
// request without rules, when that target is listed) round by round: what the rule check costs.
import { fork, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir, uptime } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { formatSummary, summarize } from './profile.js'
import { PATH_UNDER_RULE } from './access-rules-fixture.js'

const here = dirname(fileURLToPath(import.meta.url))

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    conc: { type: 'string', default: '16,64,256' },
    targets: { type: 'string', default: 'direct,stock,tuned,real,real-rules,real-log,unauth,skip' },
    pool: { type: 'string', multiple: true, default: [] },
    warmup: { type: 'string', default: '3' },
    profile: { type: 'boolean', default: false },
    'profile-conc': { type: 'string', default: '64' },
    json: { type: 'string' }
  }
})
const duration = Number(args.duration)
const reps = Number(args.reps)
const concurrencies = args.conc.split(',').map(Number)
const warmup = Number(args.warmup)

interface LoadResult { requests: number, rps: number, latencyMs: { p50: number, p75: number, p90: number, p99: number }, non2xx: number, errors: number }
interface Target {
  name: string
  description: string
  gateway: string | undefined
  path: string
  cookie: boolean
  expectStatus: number
}

const TARGETS: Record<string, Omit<Target, 'name'>> = {
  direct: { description: 'upstream directly', gateway: undefined, path: '/', cookie: false, expectStatus: 200 },
  stock: { description: 'comparison app, stock @fastify/http-proxy dispatcher (no `undici` option)', gateway: 'stock', path: '/', cookie: true, expectStatus: 200 },
  tuned: { description: 'comparison app, createUpstreamPool (checks the comparison app tracks the real one)', gateway: 'tuned', path: '/', cookie: true, expectStatus: 200 },
  real: { description: 'real gateway (buildApp), session cookie, no logger', gateway: 'real', path: '/', cookie: true, expectStatus: 200 },
  'real-rules': { description: `real gateway with ACCESS_RULES (10 rules), session cookie, GET ${PATH_UNDER_RULE}: the user passes the /reports rule, then is proxied`, gateway: 'real-rules', path: PATH_UNDER_RULE, cookie: true, expectStatus: 200 },
  'real-same-path': { description: `real gateway without rules, GET ${PATH_UNDER_RULE}: real-rules's request without the check (not in the default list)`, gateway: 'real', path: PATH_UNDER_RULE, cookie: true, expectStatus: 200 },
  'real-log': { description: 'real gateway, LOG_LEVEL=info (pino to /dev/null)', gateway: 'real-log', path: '/', cookie: true, expectStatus: 200 },
  unauth: { description: 'real gateway, no cookie: 401 JSON, nothing proxied', gateway: 'real', path: '/', cookie: false, expectStatus: 401 },
  skip: { description: 'real gateway, SKIP_AUTH_PATHS (/public/), no cookie', gateway: 'real', path: '/public/x', cookie: false, expectStatus: 200 }
}

function targetsFromArgs (): Target[] {
  const list: Target[] = args.targets.split(',').filter((t) => t !== '').map((name) => {
    const t = TARGETS[name]
    if (t === undefined) throw new Error(`unknown target ${name}; known: ${Object.keys(TARGETS).join(', ')}`)
    return { name, ...t }
  })
  for (const json of args.pool) {
    JSON.parse(json)
    list.push({ name: `pool ${json}`, description: `comparison app, new Pool(upstream, ${json})`, gateway: `pool:${json}`, path: '/', cookie: true, expectStatus: 200 })
  }
  return list
}

// ---- processes ------------------------------------------------------------------------------

const children: ChildProcess[] = []
process.on('exit', () => { for (const c of children) if (c.exitCode === null) c.kill('SIGTERM') })
process.on('SIGINT', () => { process.exit(130) })

async function forkReady (script: string, env: Record<string, string>, execArgv: string[] = process.execArgv): Promise<{ child: ChildProcess, url: string }> {
  const child = fork(join(here, script), [], { env: { ...process.env, ...env }, execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  children.push(child)
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { url?: string }) => { if (m.url !== undefined) resolve(m.url) })
    child.once('exit', (code) => { reject(new Error(`${script} ${JSON.stringify(env)} exited with ${code}`)) })
  })
  return { child, url }
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ stop: true })
  await exited
}

/** utime + stime of a process, in ms (Linux /proc; undefined elsewhere). */
function cpuMs (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks
  } catch { return undefined }
}
const clockTicks = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) } catch { return 100 } })()

// ---- sessions ---------------------------------------------------------------------------------

function setCookies (response: Response): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';', 1)[0]!
    const eq = pair.indexOf('=')
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/** Signs in through GET + POST /login, as a browser does; returns the session Cookie header. */
async function login (base: string, username: string): Promise<string> {
  const page = await fetch(`${base}/login`)
  const csrfCookies = setCookies(page)
  const token = /name="csrf_token" value="([^"]+)"/.exec(await page.text())?.[1]
  if (token === undefined) throw new Error(`no csrf_token on ${base}/login`)
  const response = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: Object.entries(csrfCookies).map(([k, v]) => `${k}=${v}`).join('; ') },
    body: new URLSearchParams({ username, csrf_token: token, next: '/' })
  })
  const session = Object.entries(setCookies(response)).find(([name]) => name === 'authgate' || name === '__Host-authgate')
  if (response.status < 300 || response.status >= 400 || session === undefined) throw new Error(`login at ${base} failed: ${response.status}`)
  return `${session[0]}=${session[1]}`
}

// ---- load -------------------------------------------------------------------------------------

// `wrk -v` prints its version and exits 1; only a missing binary is an error here.
const wrkVersion = spawnSync('wrk', ['-v'], { encoding: 'utf8' })
const hasWrk = wrkVersion.error === undefined && process.env.BENCH_LOADGEN !== 'node'

function parseDurationMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value)
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

function parseWrk (out: string): LoadResult {
  const pct = (p: string): number => parseDurationMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '')
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    latencyMs: { p50: pct('50'), p75: pct('75'), p90: pct('90'), p99: pct('99') },
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    errors: socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0)
  }
}

async function runLoad (url: string, connections: number, seconds: number, headers: Record<string, string>): Promise<LoadResult> {
  const [cmd, argv] = hasWrk
    ? ['wrk', ['-t', String(Math.min(2, connections)), '-c', String(connections), '-d', `${seconds}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url]]
    : [process.execPath, [...process.execArgv, join(here, 'loadgen.ts'), url, String(connections), String(seconds), JSON.stringify(headers)]]
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, argv as string[], { stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (d: Buffer) => { text += d.toString() })
    child.on('exit', (code) => { code === 0 ? resolve(text) : reject(new Error(`${cmd} exited with ${code}: ${text}`)) })
  })
  return hasWrk ? parseWrk(out) : JSON.parse(out) as LoadResult
}

// ---- main -------------------------------------------------------------------------------------

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }
const fmt = (n: number, digits = 0): string => Number.isFinite(n) ? n.toFixed(digits) : '—'
const loadNow = (): string => loadavg().map((l) => l.toFixed(2)).join(' ')

const machine = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
  loadavgAtStart: loadNow(),
  uptime: (() => { try { return execFileSync('uptime').toString().trim() } catch { return `up ${Math.round(uptime())} s` } })(),
  loadGenerator: hasWrk ? `${wrkVersion.stdout.split('\n')[0]?.trim() ?? 'wrk'}, ${Math.min(2, cpus().length)} threads` : 'bench/loadgen.ts (undici; wrk not installed or BENCH_LOADGEN=node)'
}
console.log('# authgate proxy benchmark\n')
console.log(`date ${machine.date}; node ${machine.node}; ${machine.cpus}`)
console.log(`uptime: ${machine.uptime}`)
console.log(`load generator: ${machine.loadGenerator}; ${duration} s per run, ${reps} repetitions (median), warm-up ${warmup} s per target and concurrency\n`)

const targets = targetsFromArgs()
const upstream = await forkReady('upstream.ts', {})
const gatewayUrls = new Map<string, { url: string, child: ChildProcess, cookie: string }>()
for (const t of targets) {
  if (t.gateway === undefined || gatewayUrls.has(t.gateway)) continue
  const env: Record<string, string> = { BENCH_UPSTREAM: upstream.url, BENCH_GATEWAY: t.gateway === 'real-log' ? 'real' : t.gateway }
  if (t.gateway === 'real-log') env.BENCH_LOG_LEVEL = 'info'
  const g = await forkReady('gateway.ts', env)
  gatewayUrls.set(t.gateway, { ...g, cookie: await login(g.url, 'bench-user') })
}

// Sanity: every target answers as expected, and authenticated requests arrive signed upstream.
function targetUrl (t: Target): { url: string, headers: Record<string, string>, pid: number | undefined } {
  if (t.gateway === undefined) return { url: upstream.url + t.path, headers: {}, pid: upstream.child.pid }
  const g = gatewayUrls.get(t.gateway)!
  return { url: g.url + t.path, headers: t.cookie ? { cookie: g.cookie } : {}, pid: g.child.pid }
}
async function upstreamStats (): Promise<{ total: number, signed: number }> {
  return await new Promise((resolve) => {
    const on = (m: { stats?: { total: number, signed: number } }): void => { if (m.stats !== undefined) { upstream.child.off('message', on); resolve(m.stats) } }
    upstream.child.on('message', on)
    upstream.child.send({ stats: true })
  })
}
for (const t of targets) {
  const { url, headers } = targetUrl(t)
  const before = await upstreamStats()
  const r = await fetch(url, { headers })
  await r.arrayBuffer()
  const after = await upstreamStats()
  const signed = after.signed - before.signed === 1
  const reached = after.total - before.total === 1
  const ok = r.status === t.expectStatus && reached === (t.expectStatus === 200) && signed === (t.cookie && t.expectStatus === 200)
  if (!ok) throw new Error(`sanity check failed for ${t.name}: status ${r.status}, reached upstream ${reached}, signed ${signed}`)
}
// The rules gateway really checks: a path under a rule bench-user does not pass is refused (403) and never reaches the upstream.
const rulesGateway = gatewayUrls.get('real-rules')
if (rulesGateway !== undefined) {
  const before = await upstreamStats()
  const r = await fetch(rulesGateway.url + '/admin', { headers: { cookie: rulesGateway.cookie } })
  await r.arrayBuffer()
  if (r.status !== 403 || (await upstreamStats()).total !== before.total) throw new Error(`sanity check failed for real-rules: /admin answered ${r.status}, expected 403 without reaching the upstream`)
}
console.log('sanity: every target answered as expected; authenticated requests reached the upstream signed, 401s did not reach it' + (rulesGateway !== undefined ? '; real-rules refused /admin with 403' : '') + '\n')

for (const t of targets) {
  const { url, headers } = targetUrl(t)
  for (const c of concurrencies) if (warmup > 0) await runLoad(url, c, warmup, headers)
}

interface Run { target: string, conc: number, rep: number, load: string, result: LoadResult, gatewayCpuUsPerReq: number | undefined, upstreamCpuUsPerReq: number | undefined }
const runs: Run[] = []
for (let rep = 1; rep <= reps; rep++) {
  for (const c of concurrencies) {
    for (const t of targets) {
      const { url, headers, pid } = targetUrl(t)
      const load = loadNow()
      const g0 = t.gateway !== undefined ? cpuMs(pid) : undefined
      const u0 = cpuMs(upstream.child.pid)
      const result = await runLoad(url, c, duration, headers)
      const g1 = t.gateway !== undefined ? cpuMs(pid) : undefined
      const u1 = cpuMs(upstream.child.pid)
      const perReq = (a: number | undefined, b: number | undefined): number | undefined => a !== undefined && b !== undefined && result.requests > 0 ? 1000 * (b - a) / result.requests : undefined
      const bad = t.expectStatus === 200 ? result.non2xx : result.requests - result.non2xx
      runs.push({ target: t.name, conc: c, rep, load, result, gatewayCpuUsPerReq: perReq(g0, g1), upstreamCpuUsPerReq: perReq(u0, u1) })
      console.log(`rep ${rep} c=${String(c).padStart(3)} ${t.name.padEnd(14)} ${fmt(result.rps).padStart(6)} req/s  p50 ${fmt(result.latencyMs.p50, 2)} ms  p99 ${fmt(result.latencyMs.p99, 2)} ms  unexpected status ${bad}  socket errors ${result.errors}  (loadavg ${load})`)
    }
  }
}

// ---- report -----------------------------------------------------------------------------------

console.log(`\nloadavg at end: ${loadNow()}\n`)
console.log('| target | conc | req/s (median) | × direct | p50 ms | p90 ms | p99 ms | gateway CPU µs/req | upstream CPU µs/req | unexpected / errors |')
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
const summary: Array<Record<string, unknown>> = []
for (const c of concurrencies) {
  const directRps = median(runs.filter((r) => r.target === 'direct' && r.conc === c).map((r) => r.result.rps))
  for (const t of targets) {
    const rs = runs.filter((r) => r.target === t.name && r.conc === c)
    const m = (f: (r: Run) => number | undefined): number => median(rs.map(f).filter((x): x is number => x !== undefined))
    const rps = m((r) => r.result.rps)
    const unexpected = rs.reduce((a, r) => a + (t.expectStatus === 200 ? r.result.non2xx : r.result.requests - r.result.non2xx), 0)
    const errors = rs.reduce((a, r) => a + r.result.errors, 0)
    const row = {
      target: t.name, conc: c, rps, ratio: rps / directRps,
      p50: m((r) => r.result.latencyMs.p50), p90: m((r) => r.result.latencyMs.p90), p99: m((r) => r.result.latencyMs.p99),
      gatewayCpuUsPerReq: m((r) => r.gatewayCpuUsPerReq), upstreamCpuUsPerReq: m((r) => r.upstreamCpuUsPerReq), unexpected, errors
    }
    summary.push(row)
    console.log(`| ${t.name} | ${c} | ${fmt(rps)} | ${fmt(row.ratio, 2)} | ${fmt(row.p50, 2)} | ${fmt(row.p90, 2)} | ${fmt(row.p99, 2)} | ${fmt(row.gatewayCpuUsPerReq)} | ${fmt(row.upstreamCpuUsPerReq)} | ${unexpected} / ${errors} |`)
  }
}
// What ACCESS_RULES cost: real-rules against the same gateway without rules, round by round.
const accessRules: Array<Record<string, unknown>> = []
for (const base of ['real', 'real-same-path']) {
  if (!targets.some((t) => t.name === base) || !targets.some((t) => t.name === 'real-rules')) continue
  console.log(`\nACCESS_RULES: real-rules ÷ ${base}, ratios within each round (median, min–max over the rounds)\n`)
  console.log('| conc | req/s ratio | gateway CPU µs/req: with rules − without (median) | gateway CPU ratio |')
  console.log('| ---: | --- | ---: | --- |')
  for (const c of concurrencies) {
    const pairs = runs.filter((r) => r.target === 'real-rules' && r.conc === c).flatMap((r) => {
      const b = runs.find((x) => x.target === base && x.conc === c && x.rep === r.rep)
      return b === undefined ? [] : [[r, b] as const]
    })
    const rpsRatios = pairs.map(([r, b]) => r.result.rps / b.result.rps)
    const withCpu = pairs.filter(([r, b]) => r.gatewayCpuUsPerReq !== undefined && b.gatewayCpuUsPerReq !== undefined)
    const cpuDiffs = withCpu.map(([r, b]) => r.gatewayCpuUsPerReq! - b.gatewayCpuUsPerReq!)
    const cpuRatios = withCpu.map(([r, b]) => r.gatewayCpuUsPerReq! / b.gatewayCpuUsPerReq!)
    const range = (xs: number[], d: number): string => xs.length === 0 ? '—' : `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})`
    accessRules.push({ base, conc: c, rpsRatios, cpuUsPerReqDifferences: cpuDiffs, cpuRatios })
    console.log(`| ${c} | ${range(rpsRatios, 2)} | ${range(cpuDiffs, 1)} | ${range(cpuRatios, 2)} |`)
  }
}

console.log('\ntargets:')
for (const t of targets) console.log(`- ${t.name}: ${t.description}`)

let profileText: string | undefined
if (args.profile) {
  // A separate real gateway with --cpu-prof, under the same load as the table's `real` rows.
  const c = Number(args['profile-conc'])
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-prof-'))
  const g = await forkReady('gateway.ts', { BENCH_UPSTREAM: upstream.url, BENCH_GATEWAY: 'real' }, [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${dir}`])
  const cookie = await login(g.url, 'bench-user')
  await runLoad(g.url + '/', c, Math.max(warmup, 3), { cookie })
  const fromUs = Number(process.hrtime.bigint() / 1000n)
  const r = await runLoad(g.url + '/', c, duration, { cookie })
  const toUs = Number(process.hrtime.bigint() / 1000n)
  await stopChild(g.child)
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error('no .cpuprofile written')
  profileText = formatSummary(summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')), 30, { fromUs, toUs }))
  console.log(`\n## CPU profile of the real gateway (authenticated GET /, c=${c}, ${fmt(r.rps)} req/s; only the samples of the measured run, after a warm-up)\n`)
  console.log(profileText)
  if (process.env.BENCH_KEEP_PROFILE === undefined) rmSync(dir, { recursive: true, force: true })
  else console.log(`\nprofile kept in ${dir}`)
}

if (args.json !== undefined) writeFileSync(args.json, JSON.stringify({ machine, duration, reps, concurrencies, targets, runs, summary, accessRules, profile: profileText }, null, 2) + '\n')

for (const [, g] of gatewayUrls) await stopChild(g.child)
upstream.child.kill('SIGTERM')
process.exit(0)
