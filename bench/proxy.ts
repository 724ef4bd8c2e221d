// npm run bench: the gateway as production runs it (node dist/src/main.js, its logger at the default
// level, SQLite, the revocation refresh), side by side with the origin served directly, nginx, Caddy
// and stock @fastify/http-proxy in front of the same origin. See docs/PERFORMANCE.md, "Method".
//
//   npm run bench -- [--duration 10] [--reps 3] [--warmup 3] [--settle 2] [--connections 50] [--threads 1]
//                    [--targets origin,nginx,...] [--gateway-env NAME=value]... [--build auto|always|never]
//                    [--entry dist|tsx] [--profile] [--results bench/results]
//
// Every server runs in its own process(es); the load generator (`wrk`, else bench/loadgen.ts) and the
// WebSocket client (bench/ws-loadgen.ts) in theirs. Rounds are interleaved (repetition → target) so
// that a change in the machine's load hits every target alike; the gateway's ratio to each target is
// taken within a round and the median of the rounds reported. CPU time per request comes from
// /proc/<pid>/stat, summed over each server's process tree. Results: bench/results/<date>-bench.{json,md}.
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { PATH_UNDER_RULE, TEN_RULES, BENCH_USER } from './access-rules-fixture.js'
import { evaluateGoals, fmt, markdownTables, summarise, type LoadResult, type Run, type TargetInfo } from './bench-report.js'
import type { OriginStats } from './origin.js'
import { cpuMs, freePort, processTree, rssBytes, stopProcess } from './processes.js'
import { ensureBuilt, ROOT, signIn, startGateway, type RunningGateway } from './production-gateway.js'
import { formatSummary, summarize } from './profile.js'
import { findBinary, startCaddy, startNginx, type ReverseProxy } from './reverse-proxies.js'

// By URL: the children run wherever the benchmark was started from, where a bare `tsx` may not resolve.
const TSX = import.meta.resolve('tsx')

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    settle: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    targets: { type: 'string' },
    'gateway-env': { type: 'string', multiple: true, default: [] },
    build: { type: 'string', default: 'auto' },
    entry: { type: 'string', default: 'dist' },
    profile: { type: 'boolean', default: false },
    results: { type: 'string', default: join(ROOT, 'bench', 'results') },
    help: { type: 'boolean', default: false }
  }
})

// ---- targets ------------------------------------------------------------------------------------

/** The processes the targets are served by. */
type ServerName = 'origin' | 'nginx' | 'caddy' | 'stock' | 'authgate' | 'authgate-rules' | 'authgate-jwt'
interface TargetSpec {
  name: string
  kind: 'http' | 'ws'
  label: string
  description: string
  server: ServerName
  path: string
  cookie: boolean
  /** What the origin must see: a signed identity (X-Auth-Signature), an X-Identity-Assertion. */
  signed: boolean
  asserted: boolean
}
const TARGETS: TargetSpec[] = [
  { name: 'origin', kind: 'http', label: 'origin directly', description: 'GET / on the origin (Fastify hello world, bench/origin.ts)', server: 'origin', path: '/', cookie: false, signed: false, asserted: false },
  { name: 'nginx', kind: 'http', label: 'nginx, 1 worker, keep-alive upstream', description: 'nginx as a plain reverse proxy: worker_processes 1, upstream keepalive 64, its default access log to a file', server: 'nginx', path: '/', cookie: false, signed: false, asserted: false },
  { name: 'caddy', kind: 'http', label: 'Caddy, GOMAXPROCS=1', description: 'caddy run, reverse_proxy, GOMAXPROCS=1, admin off, no access log (its default)', server: 'caddy', path: '/', cookie: false, signed: false, asserted: false },
  { name: 'stock', kind: 'http', label: 'stock @fastify/http-proxy, no auth', description: '@fastify/http-proxy with default options, no authentication, no logger (bench/stock-proxy.ts)', server: 'stock', path: '/', cookie: false, signed: false, asserted: false },
  { name: 'authgate', kind: 'http', label: 'authgate, authenticated', description: 'the gateway (main.js), session cookie, GET /', server: 'authgate', path: '/', cookie: true, signed: true, asserted: false },
  { name: 'authgate-skip', kind: 'http', label: 'authgate, SKIP_AUTH_PATHS path', description: 'the same gateway, GET /public/hello without a cookie (SKIP_AUTH_PATHS=/public/)', server: 'authgate', path: '/public/hello', cookie: false, signed: false, asserted: false },
  { name: 'authgate-rules', kind: 'http', label: 'authgate, 10 ACCESS_RULES', description: `a gateway with the ten ACCESS_RULES of bench/access-rules-fixture.ts, session cookie, GET ${PATH_UNDER_RULE} (the user passes the /reports rule)`, server: 'authgate-rules', path: PATH_UNDER_RULE, cookie: true, signed: true, asserted: false },
  { name: 'authgate-jwt', kind: 'http', label: 'authgate, IDENTITY_JWT=true', description: 'a gateway with the ES256 identity assertion (X-Identity-Assertion) on, session cookie, GET /', server: 'authgate-jwt', path: '/', cookie: true, signed: true, asserted: true },
  { name: 'ws-origin', kind: 'ws', label: 'WebSocket, origin directly', description: 'echo round trips on the origin\'s WebSocket', server: 'origin', path: '/ws', cookie: false, signed: false, asserted: false },
  { name: 'ws-authgate', kind: 'ws', label: 'WebSocket through authgate', description: 'echo round trips through the gateway (session cookie on the handshake)', server: 'authgate', path: '/ws', cookie: true, signed: true, asserted: false }
]

if (args.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).slice(0, 8).map((l) => l.slice(3)).join('\n') + '\n\ntargets:\n' + TARGETS.map((t) => `  ${t.name.padEnd(15)} ${t.description}`).join('\n') + '\n')
  process.exit(0)
}

const number = (name: string, value: string, min: number): number => {
  const n = Number(value)
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}`)
  return n
}
const duration = number('duration', args.duration, 1)
const reps = Math.floor(number('reps', args.reps, 1))
const warmup = number('warmup', args.warmup, 0)
const settle = number('settle', args.settle, 0)
const connections = Math.floor(number('connections', args.connections, 1))
const threads = Math.floor(number('threads', args.threads, 1))
if (!['auto', 'always', 'never'].includes(args.build)) throw new Error('--build is auto, always or never')
if (args.entry !== 'dist' && args.entry !== 'tsx') throw new Error('--entry is dist or tsx')
const gatewayEnv: Record<string, string> = Object.fromEntries(args['gateway-env'].map((pair) => {
  const eq = pair.indexOf('=')
  if (eq <= 0) throw new Error(`--gateway-env ${pair}: expected NAME=value`)
  return [pair.slice(0, eq), pair.slice(eq + 1)]
}))
const requested = args.targets === undefined ? TARGETS.map((t) => t.name) : args.targets.split(',').filter((t) => t !== '')
for (const name of requested) if (!TARGETS.some((t) => t.name === name)) throw new Error(`unknown target ${name}; known: ${TARGETS.map((t) => t.name).join(', ')}`)

// ---- what is installed ----------------------------------------------------------------------------

/** Targets left out, and why: said in the output and in the results. */
const skipped = new Map<string, string>()
const wrkVersion = spawnSync('wrk', ['-v'], { encoding: 'utf8' })
const hasWrk = wrkVersion.error === undefined && process.env.BENCH_LOADGEN !== 'node'
const binaries: Partial<Record<'nginx' | 'caddy', string>> = {}
for (const [name, debianPath, pkg] of [['nginx', '/usr/sbin/nginx', 'nginx-light (or nginx)'], ['caddy', '/usr/bin/caddy', 'caddy']] as const) {
  if (!requested.includes(name)) continue
  const binary = findBinary(name, debianPath)
  if (binary === undefined) skipped.set(name, `${name} is not installed: apt install ${pkg}`)
  else binaries[name] = binary
}
const targets = TARGETS.filter((t) => requested.includes(t.name) && !skipped.has(t.name))

const loadNow = (): string => loadavg().map((l) => l.toFixed(2)).join(' ')
const date = new Date().toISOString()
const machine = {
  date,
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
  loadavgAtStart: loadNow(),
  uptime: spawnSync('uptime', { encoding: 'utf8' }).stdout?.trim() ?? '',
  loadGenerator: hasWrk
    ? `${wrkVersion.stdout.split('\n')[0]?.trim() ?? 'wrk'}: wrk -t${threads} -c${connections} --latency`
    : `bench/loadgen.ts (undici, ${connections} connections): ${process.env.BENCH_LOADGEN === 'node' ? 'BENCH_LOADGEN=node' : 'wrk is not installed (apt install wrk); this JavaScript client costs more CPU than wrk, so absolute figures are lower: compare ratios'}`,
  build: ensureBuilt(args.build as 'auto' | 'always' | 'never'),
  versions: {} as Record<string, string>
}
if (args.entry === 'tsx') machine.build = 'src/main.ts through tsx (--entry tsx): not the production build'

const out: string[] = []
const say = (line = ''): void => { process.stdout.write(line + '\n'); out.push(line) }
say('# authgate proxy benchmark\n')
say(`${date}; node ${machine.node}; ${machine.cpus}`)
say(`uptime: ${machine.uptime}`)
say(`load generator: ${machine.loadGenerator}; ${duration} s per run, ${reps} rounds (median), warm-up ${warmup} s per target`)
say(`gateway: ${args.entry === 'dist' ? 'node dist/src/main.js' : 'src/main.ts (tsx)'}, NODE_ENV=production, LOG_FORMAT=json, LOG_LEVEL ${gatewayEnv.LOG_LEVEL ?? 'default (info)'}, log to a file; ${machine.build}` +
  (Object.keys(gatewayEnv).length > 0 ? `; --gateway-env ${Object.entries(gatewayEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''))
for (const [name, why] of skipped) say(`SKIPPED ${name}: ${why}`)
if (!hasWrk && process.env.BENCH_LOADGEN !== 'node') say('MISSING wrk (apt install wrk): using bench/loadgen.ts instead')
say()

// ---- servers ------------------------------------------------------------------------------------

const stops: Array<() => Promise<unknown>> = []
process.on('SIGINT', () => { void Promise.allSettled(stops.map(async (s) => await s())).then(() => process.exit(130)) })

interface Server { url: string, pid: number, takeLog: () => { bytes: number, errors: string[] } }
const servers = new Map<ServerName, Server>()
const needed = new Set(targets.map((t) => t.server))
const usesRules = needed.has('authgate-rules')
const logErrors: string[] = []

async function forkNode (script: string, env: Record<string, string>): Promise<{ child: ChildProcess, url: string }> {
  const child = fork(join(ROOT, 'bench', script), [], { env: { PATH: process.env.PATH ?? '', ...env }, execArgv: ['--import', TSX], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  stops.push(async () => { await stopProcess(child) })
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { url: string }) => { resolve(m.url) })
    child.once('exit', (code) => { reject(new Error(`${script} exited with ${code}`)) })
  })
  return { child, url }
}
const noLog = (): { bytes: number, errors: string[] } => ({ bytes: 0, errors: [] })

const origin = await forkNode('origin.ts', {})
servers.set('origin', { url: origin.url, pid: origin.child.pid!, takeLog: noLog })
async function originStats (): Promise<OriginStats> {
  return await new Promise((resolve) => {
    const on = (m: { stats?: OriginStats }): void => { if (m.stats !== undefined) { origin.child.off('message', on); resolve(m.stats) } }
    origin.child.on('message', on)
    origin.child.send({ stats: true })
  })
}

function fromProxy (p: ReverseProxy): Server {
  stops.push(p.stop)
  return { url: p.url, pid: p.pid, takeLog: () => { p.takeLog(); return noLog() } }
}
if (binaries.nginx !== undefined) {
  const nginx = await startNginx(binaries.nginx, await freePort(), origin.url)
  machine.versions.nginx = nginx.version
  servers.set('nginx', fromProxy(nginx))
}
if (binaries.caddy !== undefined) {
  const caddy = await startCaddy(binaries.caddy, await freePort(), origin.url)
  machine.versions.caddy = caddy.version
  servers.set('caddy', fromProxy(caddy))
}
if (needed.has('stock')) {
  const port = await freePort()
  const stock = await forkNode('stock-proxy.ts', { BENCH_UPSTREAM: origin.url, PORT: String(port) })
  servers.set('stock', { url: stock.url, pid: stock.child.pid!, takeLog: noLog })
}

const gatewayExits = new Map<string, number | null>()
async function gatewayServer (name: ServerName, env: (port: number) => Record<string, string>, nodeArgs: string[] = []): Promise<RunningGateway> {
  const port = await freePort()
  const gateway = await startGateway({ port, upstreamUrl: origin.url, env: { ...env(port), ...gatewayEnv }, nodeArgs, entry: args.entry as 'dist' | 'tsx' })
  stops.push(async () => { gatewayExits.set(name, await gateway.stop()) })
  return gateway
}
const gateways = new Map<ServerName, RunningGateway>()
const jwtKey = (): string => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const GATEWAY_ENV: Partial<Record<ServerName, (port: number) => Record<string, string>>> = {
  authgate: () => ({}),
  'authgate-rules': () => ({ ACCESS_RULES: TEN_RULES }),
  'authgate-jwt': (port) => ({ IDENTITY_JWT: 'true', PUBLIC_URL: `http://127.0.0.1:${port}`, IDENTITY_JWT_KEY: jwtKey() })
}
for (const [name, env] of Object.entries(GATEWAY_ENV) as Array<[ServerName, (port: number) => Record<string, string>]>) {
  if (!needed.has(name)) continue
  const gateway = await gatewayServer(name, env)
  gateways.set(name, gateway)
  servers.set(name, { url: gateway.url, pid: gateway.pid, takeLog: gateway.takeLog })
}

// Resident memory after start-up and a settle, before any request (but the health check).
await sleep(settle * 1000)
const rssIdle = new Map<ServerName, number | undefined>()
for (const [name, s] of servers) rssIdle.set(name, rssBytes(processTree(s.pid)))

const cookies = new Map<ServerName, string>()
for (const [name, g] of gateways) cookies.set(name, await signIn(g.url, BENCH_USER))

// ---- sanity: every target answers, and forwards what it should ---------------------------------------

function request (t: TargetSpec): { url: string, headers: Record<string, string> } {
  const s = servers.get(t.server)!
  const base = t.kind === 'ws' ? s.url.replace(/^http/, 'ws') : s.url
  return { url: base + t.path, headers: t.cookie ? { cookie: cookies.get(t.server)! } : {} }
}

async function webSocketEcho (url: string, headers: Record<string, string>): Promise<boolean> {
  const socket = new WebSocket(url, { headers })
  try {
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    const echo = new Promise<string>((resolve) => socket.once('message', (data: Buffer) => { resolve(data.toString()) }))
    socket.send('sanity')
    return await echo === 'sanity'
  } finally {
    socket.close()
  }
}

for (const t of targets) {
  const { url, headers } = request(t)
  const before = await originStats()
  let ok: boolean
  if (t.kind === 'ws') {
    ok = await webSocketEcho(url, headers)
    const after = await originStats()
    ok &&= after.webSockets - before.webSockets === 1 && (after.signedWebSockets - before.signedWebSockets === 1) === t.signed
  } else {
    const response = await fetch(url, { headers })
    await response.arrayBuffer()
    const after = await originStats()
    ok = response.status === 200 && after.total - before.total === 1 &&
      (after.signed - before.signed === 1) === t.signed && (after.asserted - before.asserted === 1) === t.asserted
  }
  if (!ok) throw new Error(`sanity check failed for ${t.name} (${url}): it did not reach the origin ${t.signed ? 'signed' : 'unsigned'}${t.asserted ? ' with an identity assertion' : ''}`)
}
if (usesRules) {
  // The rules really are checked: a path under a rule the user does not pass is refused before the origin.
  const before = await originStats()
  const response = await fetch(`${servers.get('authgate-rules')!.url}/admin`, { headers: { cookie: cookies.get('authgate-rules')! } })
  await response.arrayBuffer()
  if (response.status !== 403 || (await originStats()).total !== before.total) throw new Error(`sanity check failed for authgate-rules: /admin answered ${response.status}, expected 403 without reaching the origin`)
}
say(`sanity: every target answered; the gateway's requests reached the origin signed${usesRules ? ', authgate-rules refused /admin (403) before the origin' : ''}\n`)

// ---- load -----------------------------------------------------------------------------------------

function parseDurationMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value)
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

function parseWrk (text: string): LoadResult {
  const pct = (p: string): number => parseDurationMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(text)?.[1] ?? '')
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  return {
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN),
    latencyMs: { p50: pct('50'), p75: pct('75'), p90: pct('90'), p99: pct('99') },
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    errors: socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0)
  }
}

async function runLoad (t: TargetSpec, seconds: number): Promise<LoadResult> {
  const { url, headers } = request(t)
  const script = (name: string): string[] => ['--import', TSX, join(ROOT, 'bench', name), url, String(connections), String(seconds), JSON.stringify(headers)]
  const [cmd, argv] = t.kind === 'ws'
    ? [process.execPath, script('ws-loadgen.ts')]
    : hasWrk
      ? ['wrk', ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url]]
      : [process.execPath, script('loadgen.ts')]
  const text = await new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.on('exit', (code) => { code === 0 ? resolve(stdout) : reject(new Error(`${cmd} exited with ${code}: ${stdout}`)) })
  })
  return cmd === 'wrk' ? parseWrk(text) : JSON.parse(text) as LoadResult
}

for (const t of targets) {
  if (warmup > 0) await runLoad(t, warmup)
  for (const s of servers.values()) s.takeLog()
}

const runs: Run[] = []
for (let rep = 1; rep <= reps; rep++) {
  for (const t of targets) {
    const server = servers.get(t.server)!
    const tree = processTree(server.pid)
    const originPid = [servers.get('origin')!.pid]
    const load = loadNow()
    const c0 = cpuMs(tree)
    const o0 = cpuMs(originPid)
    let rssMax = 0
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssBytes(tree) ?? 0) }, 250)
    const result = await runLoad(t, duration)
    clearInterval(sampler)
    const c1 = cpuMs(tree)
    const o1 = cpuMs(originPid)
    const log = server.takeLog()
    logErrors.push(...log.errors.map((e) => `${t.name}: ${e}`))
    const perRequest = (a: number | undefined, b: number | undefined): number | undefined => a !== undefined && b !== undefined && result.requests > 0 ? 1000 * (b - a) / result.requests : undefined
    runs.push({
      rep,
      target: t.name,
      result,
      cpuUsPerReq: perRequest(c0, c1),
      originCpuUsPerReq: perRequest(o0, o1),
      rssMaxBytes: rssMax > 0 ? rssMax : undefined,
      logBytesPerReq: gateways.has(t.server) && result.requests > 0 ? log.bytes / result.requests : undefined,
      loadavg: load
    })
    say(`round ${rep} ${t.name.padEnd(15)} ${fmt(result.rps).padStart(7)} /s  p50 ${fmt(result.latencyMs.p50, 2)} ms  p99 ${fmt(result.latencyMs.p99, 2)} ms  CPU ${fmt(runs.at(-1)!.cpuUsPerReq ?? NaN, 1)} µs/req  unexpected ${result.non2xx}  socket errors ${result.errors}  (loadavg ${load})`)
  }
}

// ---- report ---------------------------------------------------------------------------------------

const infos: TargetInfo[] = targets.map((t) => ({ name: t.name, kind: t.kind, label: t.label, rssIdleBytes: rssIdle.get(t.server) }))
const rows = summarise(infos, runs)
const goals = evaluateGoals(rows, skipped)
say(`\nloadavg at end: ${loadNow()}\n`)
const tables = markdownTables(rows, goals)
say(tables)
say('\ntargets:')
for (const t of targets) say(`- ${t.name}: ${t.description}`)
for (const [name, why] of skipped) say(`- ${name}: SKIPPED, ${why}`)

let profile: string | undefined
if (args.profile) {
  // One more gateway with V8's sampling profiler, under the same load as the `authgate` rows; only the
  // samples of the measured run count (V8's profiler and process.hrtime share the monotonic clock).
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-profile-'))
  const gateway = await gatewayServer('authgate', () => ({}), ['--cpu-prof', `--cpu-prof-dir=${dir}`])
  servers.set('authgate', { url: gateway.url, pid: gateway.pid, takeLog: gateway.takeLog })
  cookies.set('authgate', await signIn(gateway.url, BENCH_USER))
  const t = TARGETS.find((x) => x.name === 'authgate')!
  await runLoad(t, Math.max(warmup, 3))
  const fromUs = Number(process.hrtime.bigint() / 1000n)
  const result = await runLoad(t, duration)
  const toUs = Number(process.hrtime.bigint() / 1000n)
  await gateway.stop()
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  if (files.length === 0) throw new Error('the profiled gateway wrote no .cpuprofile')
  // With WORKERS, one profile per process: the primary's is idle, the workers' carry the load.
  profile = files.map((f) => `### ${f}\n\n${formatSummary(summarize(JSON.parse(readFileSync(join(dir, f), 'utf8')), 30, { fromUs, toUs }))}`).join('\n\n')
  say(`\n## CPU profile of the gateway (main.js, authenticated GET /, ${connections} connections, ${fmt(result.rps)} requests/s; the measured run only, after a warm-up)\n`)
  say(profile)
  if (process.env.BENCH_KEEP_PROFILE === undefined) rmSync(dir, { recursive: true, force: true })
  else say(`\nprofile kept in ${dir}`)
}

await Promise.allSettled(stops.map(async (s) => await s()))
for (const [name, code] of gatewayExits) if (code !== 0) logErrors.push(`${name}: the gateway exited with ${code} on SIGTERM (expected a clean 0)`)
const unexpected = rows.reduce((a, r) => a + r.unexpected, 0)
if (unexpected > 0) say(`\nFAILED: ${unexpected} responses with an unexpected status: these are not the figures of a working proxy`)
if (logErrors.length > 0) say(`\nFAILED: errors in the gateway's log or exit:\n${logErrors.slice(0, 10).join('\n')}`)

mkdirSync(args.results, { recursive: true })
const base = join(args.results, `${date.slice(0, 10)}-bench`)
machine.uptime += `; loadavg at end ${loadNow()}`
writeFileSync(`${base}.json`, JSON.stringify({ machine, settings: { duration, reps, warmup, settle, connections, threads, gatewayEnv, entry: args.entry }, skipped: Object.fromEntries(skipped), targets: targets.map(({ name, description, label, kind }) => ({ name, label, kind, description })), rssIdleBytes: Object.fromEntries(rssIdle), runs, summary: rows, goals, logErrors, profile }, null, 2) + '\n')
writeFileSync(`${base}.md`, out.join('\n') + '\n')
process.stdout.write(`\nwritten: ${base}.json, ${base}.md\n`)
process.exit(unexpected > 0 || logErrors.length > 0 ? 1 : 0)
