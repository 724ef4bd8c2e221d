// npm run soak: does the gateway stay flat under a long run of real traffic? Everything on loopback:
// an upstream (HTTP and WebSocket echo, here, that verifies every signed identity and echoes the
// user it verified), the gateway as production runs it (node dist/src/main.js, NODE_ENV=production,
// its JSON log at the default level into a file) on PostgreSQL in a fresh schema dropped at the end,
// and the load in a second process (bench/soak-driver.ts). The gateway's resident set is read from
// /proc every second. It fails (exit 1) on any error (a response other than 200 with the right
// user, a WebSocket lost, a sign-in refused, an error in the gateway's log, a shutdown that is not
// clean) and on resident memory that grows 10 % or more from the end of the warm-up to the end.
// Figures are printed and written to bench/results/<date>-soak.{json,txt}.
//
// Settings (environment): SOAK_REQUESTS (200000), SOAK_SESSIONS (1000), SOAK_WEBSOCKETS (200),
// SOAK_CONCURRENCY (32: the gateway's default CLIENT_MAX_CONCURRENT_REQUESTS for one address),
// SOAK_MAX_SECONDS (900, the hard limit), SOAK_WARMUP (0.2 of the requests),
// TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test), SOAK_GATEWAY=tsx to run src/main.ts
// through tsx instead of the build, SOAK_RESULTS (the directory for the figures; bench/results),
// SOAK_KEEP_LOG=1 to keep the gateway's log of a run that passed.
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { WebSocketServer } from 'ws'
import { verifyIdentityHeaders } from '@authgate/verify'
import type { DriverProgress, DriverResult, DriverSettings, FromDriver } from './soak-driver.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')

function setting (name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  const value = raw === undefined || raw === '' ? fallback : Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number of at least ${min}`)
  return value
}
const DEFAULTS = { requests: 200_000, sessions: 1000, websockets: 200 }
const requests = Math.floor(setting('SOAK_REQUESTS', DEFAULTS.requests))
const sessions = Math.floor(setting('SOAK_SESSIONS', DEFAULTS.sessions))
const websockets = Math.floor(setting('SOAK_WEBSOCKETS', DEFAULTS.websockets, 0))
const concurrency = Math.floor(setting('SOAK_CONCURRENCY', 32))
const maxSeconds = setting('SOAK_MAX_SECONDS', 900)
const warmupFraction = setting('SOAK_WARMUP', 0.2, 0)
const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const fullSize = requests === DEFAULTS.requests && sessions === DEFAULTS.sessions && websockets === DEFAULTS.websockets
const resultsDir = process.env.SOAK_RESULTS ?? join(root, 'bench', 'results')
/** RSS growth from the end of the warm-up to the end that fails the run. */
const GROWTH_LIMIT = 0.10

const failures: string[] = []
const started = Date.now()
const elapsed = (): number => (Date.now() - started) / 1000
const say = (line: string): void => { process.stdout.write(`[soak ${elapsed().toFixed(0).padStart(4)} s] ${line}\n`) }
const MiB = (bytes: number): number => Math.round(bytes / 1048576 * 10) / 10

// ---- the upstream: verifies the signed identity and echoes the user it verified ----
const headerSecret = randomBytes(32).toString('base64url')
let upstreamRequests = 0
const upstream = createServer((req, res) => {
  upstreamRequests++
  let length = 0
  req.on('data', (chunk: Buffer) => { length += chunk.length })
  req.on('end', () => {
    const verified = verifyIdentityHeaders(req.headers, headerSecret)
    if (!verified.ok) {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(`upstream refused the identity: ${verified.reason}`)
      return
    }
    const body = JSON.stringify({ user: verified.identity.username, path: req.url, items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}` })) })
    res.writeHead(200, { 'content-type': 'application/json', 'x-soak-user': verified.identity.username, 'x-soak-body-length': String(length) })
    res.end(body)
  })
})
// Longer than the gateway's pool keeps idle connections: the gateway decides when they close.
upstream.keepAliveTimeout = 65_000
upstream.headersTimeout = 66_000
const wss = new WebSocketServer({ server: upstream })
let upstreamSockets = 0
let upstreamSocketsMax = 0
wss.on('connection', (ws, req: IncomingMessage) => {
  const verified = verifyIdentityHeaders(req.headers, headerSecret)
  if (!verified.ok) {
    ws.close(4001, `identity: ${verified.reason}`)
    return
  }
  upstreamSocketsMax = Math.max(upstreamSocketsMax, ++upstreamSockets)
  const user = verified.identity.username
  ws.on('message', (data) => { ws.send(`${user} ${data.toString()}`) })
  ws.on('close', () => { upstreamSockets-- })
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

// ---- PostgreSQL: a fresh schema, which the gateway's connections use through search_path ----
const schema = 'authgate_soak_' + randomBytes(6).toString('hex')
async function admin (sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}
await admin(`create schema ${schema}`)
const gatewayDatabaseUrl = `${databaseUrl}${databaseUrl.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`

// ---- the gateway, as production runs it ----
const work = mkdtempSync(join(tmpdir(), 'authgate-soak-'))
const logFile = join(work, 'gateway.log')
const built = join(root, 'dist', 'src', 'main.js')
const useTsx = process.env.SOAK_GATEWAY === 'tsx' || !existsSync(built)
if (useTsx && process.env.SOAK_GATEWAY !== 'tsx') say('no build (dist/src/main.js): running src/main.ts through tsx; `npm run soak` builds first')
// tsx by its own URL: the gateway runs in a directory of its own, where `tsx` does not resolve.
const entry = useTsx ? ['--import', import.meta.resolve('tsx'), join(root, 'src', 'main.ts')] : [built]
const logFd = openSync(logFile, 'w')
let gatewayStderr = ''
const gateway: ChildProcess = spawn(process.execPath, entry, {
  cwd: work,
  env: {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0',
    UPSTREAM_URL: upstreamUrl,
    DATABASE_URL: gatewayDatabaseUrl,
    SECRET_KEY: randomBytes(32).toString('base64url'),
    HEADER_SIGNING_SECRET: headerSecret,
    AUTH_METHOD: 'local',
    LOCAL_AUTH: 'username'
  },
  stdio: ['ignore', logFd, 'pipe']
})
closeSync(logFd)
gateway.stderr?.on('data', (chunk: Buffer) => { gatewayStderr += chunk.toString() })
let gatewayExit: { code: number | null, signal: NodeJS.Signals | null } | undefined
const gatewayExited = new Promise<void>((resolve) => {
  gateway.once('exit', (code, signal) => { gatewayExit = { code, signal }; resolve() })
})
const pid = gateway.pid!

interface LogLine { level?: number, msg?: string, listen?: string }
function logLines (): LogLine[] {
  return readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => {
    try {
      return JSON.parse(l) as LogLine
    } catch {
      return { msg: l }
    }
  })
}

let base: string | undefined
for (let waited = 0; base === undefined; waited += 100) {
  if (gatewayExit !== undefined || waited > 60_000) {
    await cleanUp()
    throw new Error(`the gateway did not start: ${gatewayStderr}${readFileSync(logFile, 'utf8')}`)
  }
  const listen = logLines().find((l) => l.listen !== undefined)?.listen
  if (listen !== undefined) base = `http://${listen}`
  else await sleep(100)
}
say(`gateway pid ${pid} on ${base} (${useTsx ? 'src/main.ts via tsx' : 'dist/src/main.js'}), PostgreSQL schema ${schema}, log ${logFile}`)

// ---- resident memory, every second ----
interface Sample { t: number, rss: number, done: number }
const samples: Sample[] = []
let progress: DriverProgress = { done: 0, errors: 0, signIns: 0, signInErrors: 0, websocketsOpen: 0, websocketMessages: 0 }
let stage = 'starting'
function rss (): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024
}
const rssAtStart = rss()
let warmupEndedAt: number | undefined
let loadEndedAt: number | undefined
const sampler = setInterval(() => {
  if (gatewayExit !== undefined) return
  const sample = { t: elapsed(), rss: rss(), done: progress.done }
  samples.push(sample)
  if (warmupEndedAt === undefined && stage === 'load' && sample.done >= requests * warmupFraction) {
    warmupEndedAt = sample.t
    say(`warm-up over (${sample.done} requests): RSS ${MiB(sample.rss)} MiB`)
  }
}, 1000)
let lastReport = 0
const reporter = setInterval(() => {
  if (elapsed() - lastReport < 10) return
  lastReport = elapsed()
  const last = samples[samples.length - 1]
  say(`${stage}: ${progress.done}/${requests} requests, ${progress.errors} errors, ${progress.signIns} sign-ins (${progress.signInErrors} failed), ${progress.websocketsOpen} WebSockets open, RSS ${last !== undefined ? MiB(last.rss) : '?'} MiB`)
}, 1000)

// ---- the load, in its own process ----
const driverSettings: DriverSettings = { base, requests, sessions, websockets, concurrency, wsIntervalMs: 5000, wsEchoTimeoutMs: 30_000 }
const driver = fork(join(here, 'soak-driver.ts'), [JSON.stringify(driverSettings)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
let result: DriverResult | undefined
const driverDone = new Promise<void>((resolve) => {
  driver.on('message', (message: FromDriver) => {
    if ('progress' in message) {
      progress = message.progress
      stage = message.stage
    } else if ('loaded' in message) {
      loadEndedAt = elapsed()
      stage = 'checking the WebSockets'
    } else if ('result' in message) {
      result = message.result
      progress = message.result
    } else failures.push(`the load failed: ${message.failed}`)
  })
  driver.once('exit', (code) => {
    if (result === undefined && failures.length === 0) failures.push(`the load process exited (${code}) without figures`)
    resolve()
  })
})
say(`load: ${requests} requests over ${sessions} sessions, ${concurrency} in flight, ${websockets} WebSockets, a sign-in every second; at most ${maxSeconds} s`)

// The hard limit: the load stops where it is; a run cut short fails.
const limit = setTimeout(() => {
  failures.push(`time limit: SOAK_MAX_SECONDS=${maxSeconds} reached after ${progress.done} of ${requests} requests`)
  driver.send({ stop: true })
  setTimeout(() => { driver.kill('SIGKILL') }, 60_000).unref()
}, maxSeconds * 1000)
await driverDone
clearTimeout(limit)
clearInterval(sampler)
clearInterval(reporter)
const loadEnd = loadEndedAt ?? elapsed()
const rssAtLoadEnd = samples[samples.length - 1]?.rss ?? NaN

// ---- the gateway stops as in production (SIGTERM), and must do so cleanly ----
gateway.kill('SIGTERM')
await Promise.race([gatewayExited, sleep(60_000)])
if (gatewayExit === undefined) {
  failures.push('the gateway did not exit within 60 s of SIGTERM')
  gateway.kill('SIGKILL')
  await gatewayExited
} else if (gatewayExit.code !== 0) failures.push(`the gateway exited with ${gatewayExit.code ?? gatewayExit.signal} after SIGTERM`)
const log = logLines()
const logErrors = log.filter((l) => (l.level ?? 0) >= 50)
const logWarnings = log.filter((l) => l.level === 40)
if (logErrors.length > 0) failures.push(`${logErrors.length} error lines in the gateway's log, first: ${logErrors[0]?.msg ?? ''}`)
if (gatewayStderr.trim() !== '') failures.push(`the gateway wrote to stderr: ${gatewayStderr.trim().slice(0, 500)}`)
await cleanUp()

// ---- the figures ----
const median = (values: number[]): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const loadSamples = samples.filter((s) => warmupEndedAt !== undefined && s.t >= warmupEndedAt && s.t <= loadEnd)
// Each end of the comparison is the median of a third of the time from the end of the warm-up to
// the end of the load. Not 10 s: under this load the resident set is a sawtooth (V8 grows the heap,
// collects, reuses or returns the pages) swinging by a third with a period of 20–40 s, so a 10 s
// window measures where in a tooth it fell. A third spans whole teeth; a leak still moves it.
const span = loadSamples.length > 0 ? loadSamples[loadSamples.length - 1]!.t - loadSamples[0]!.t : 0
const window = span / 3
const firstThird = loadSamples.filter((s) => s.t <= warmupEndedAt! + window).map((s) => s.rss)
const lastThird = loadSamples.filter((s) => s.t >= loadEnd - window).map((s) => s.rss)
const afterWarmup = median(firstThird)
const atEnd = median(lastThird)
const growth = (atEnd - afterWarmup) / afterWarmup
const maxRss = Math.max(...samples.map((s) => s.rss))

const r = result
if (r !== undefined) {
  if (r.stoppedEarly && failures.every((f) => !f.startsWith('time limit'))) failures.push(`the load stopped after ${r.done} of ${requests} requests`)
  if (r.errors > 0) failures.push(`${r.errors} requests answered wrongly`)
  if (r.signInErrors > 0) failures.push(`${r.signInErrors} fresh sign-ins failed`)
  if (r.websocketErrors > 0 || r.websocketsAliveAtEnd !== websockets) failures.push(`${websockets - r.websocketsAliveAtEnd} of ${websockets} WebSockets not alive at the end (${r.websocketErrors} errors)`)
  if (r.signIns === 0 && r.loadSeconds >= 2) failures.push('no fresh sign-in during the load')
}
if (warmupEndedAt === undefined || loadSamples.length < 3) failures.push('too few memory samples after the warm-up to compare (is the run long enough?)')
else if (!(growth < GROWTH_LIMIT)) failures.push(`resident memory grew ${(growth * 100).toFixed(1)} % after the warm-up (limit ${GROWTH_LIMIT * 100} %)`)

const figures = {
  date: new Date().toISOString(),
  node: process.version,
  machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? '?'}`,
  loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  gateway: useTsx ? 'node --import tsx src/main.ts' : 'node dist/src/main.js',
  database: 'PostgreSQL (fresh schema)',
  settings: { requests, sessions, websockets, concurrency, maxSeconds, warmupFraction, windowSeconds: Math.round(window * 10) / 10 },
  requests: r?.done ?? progress.done,
  errors: r?.errors ?? progress.errors,
  loadSeconds: r !== undefined ? Math.round(r.loadSeconds * 10) / 10 : undefined,
  ratePerSecond: r !== undefined ? Math.round(r.ratePerSecond) : undefined,
  latencyMs: r !== undefined ? { p50: round2(r.latencyMs.p50), p90: round2(r.latencyMs.p90), p99: round2(r.latencyMs.p99), max: round2(r.latencyMs.max) } : undefined,
  sessionsCreated: r?.sessionsCreated,
  freshSignIns: r?.signIns ?? progress.signIns,
  signInErrors: r?.signInErrors ?? progress.signInErrors,
  websockets: r !== undefined ? { opened: r.websocketsOpened, aliveAtEnd: r.websocketsAliveAtEnd, errors: r.websocketErrors, messagesEchoed: r.websocketMessages } : undefined,
  upstreamRequests,
  upstreamWebSocketsMax: upstreamSocketsMax,
  rssMiB: {
    start: MiB(rssAtStart),
    afterWarmup: MiB(afterWarmup),
    end: MiB(atEnd),
    endOfLoad: MiB(rssAtLoadEnd),
    max: MiB(maxRss),
    // The troughs and peaks of the two thirds, for reading the sawtooth (not asserted on).
    firstThirdRange: range(firstThird),
    lastThirdRange: range(lastThird)
  },
  rssGrowthPercent: Math.round(growth * 1000) / 10,
  warmupEndedAtSeconds: warmupEndedAt !== undefined ? Math.round(warmupEndedAt * 10) / 10 : undefined,
  loadEndedAtSeconds: Math.round(loadEnd * 10) / 10,
  gatewayLog: { lines: log.length, warnings: logWarnings.length, errors: logErrors.length, warningMessages: [...new Set(logWarnings.map((l) => l.msg ?? ''))].slice(0, 10) },
  gatewayExit,
  errorSamples: r?.errorSamples ?? [],
  passed: failures.length === 0,
  failures,
  rssSamples: samples.map((s) => [Math.round(s.t), MiB(s.rss), s.done])
}
function round2 (n: number): number { return Math.round(n * 100) / 100 }
function range (values: number[]): [number, number] {
  return values.length === 0 ? [NaN, NaN] : [MiB(Math.min(...values)), MiB(Math.max(...values))]
}

const text = [
  '# authgate soak',
  '',
  `date ${figures.date}; node ${figures.node}; ${figures.machine}; load average at the end ${figures.loadAverageAtEnd.join(' ')}`,
  `gateway: ${figures.gateway}, NODE_ENV=production, AUTH_METHOD=local LOCAL_AUTH=username, JSON log at the default level (info) to a file, ${figures.database}`,
  `load (another process): ${requests} requests over ${sessions} sessions, ${concurrency} in flight; ${websockets} WebSockets open throughout (a message each every 5 s, echo checked); a fresh sign-in every second`,
  '',
  `requests      ${figures.requests} in ${figures.loadSeconds ?? '?'} s (${figures.ratePerSecond ?? '?'} req/s), errors ${figures.errors}`,
  `latency       p50 ${figures.latencyMs?.p50 ?? '?'} ms, p90 ${figures.latencyMs?.p90 ?? '?'} ms, p99 ${figures.latencyMs?.p99 ?? '?'} ms, max ${figures.latencyMs?.max ?? '?'} ms`,
  `sign-ins      ${figures.sessionsCreated ?? '?'} sessions before the load; ${figures.freshSignIns} fresh during it, ${figures.signInErrors} failed`,
  `WebSockets    ${figures.websockets?.opened ?? '?'} opened, ${figures.websockets?.aliveAtEnd ?? '?'} alive at the end, ${figures.websockets?.messagesEchoed ?? '?'} messages echoed, ${figures.websockets?.errors ?? '?'} errors`,
  `gateway RSS   start ${figures.rssMiB.start} MiB, after warm-up ${figures.rssMiB.afterWarmup} MiB, end ${figures.rssMiB.end} MiB, max ${figures.rssMiB.max} MiB: growth ${figures.rssGrowthPercent} %`,
  `              (limit ${GROWTH_LIMIT * 100} %: medians of the first and the last ${Math.round(window)} s between the end of the warm-up, at ${Math.round(warmupEndedAt ?? NaN)} s, and the end of the load, at ${Math.round(loadEnd)} s; ranges ${figures.rssMiB.firstThirdRange.join('–')} and ${figures.rssMiB.lastThirdRange.join('–')} MiB)`,
  `gateway log   ${log.length} lines, ${logWarnings.length} warnings, ${logErrors.length} errors; exit ${gatewayExit?.code ?? gatewayExit?.signal ?? '?'} after SIGTERM`,
  '',
  failures.length === 0 ? 'PASS' : `FAIL\n${failures.map((f) => `- ${f}`).join('\n')}`,
  ...(figures.errorSamples.length > 0 ? ['', 'first errors:', ...figures.errorSamples.map((e) => `- ${e}`)] : [])
].join('\n') + '\n'

process.stdout.write('\n' + text)
mkdirSync(resultsDir, { recursive: true })
const name = `${figures.date.slice(0, 10)}-soak${fullSize ? '' : '-quick'}`
writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(figures, null, 2) + '\n')
writeFileSync(join(resultsDir, `${name}.txt`), text)
say(`figures written to ${relative(process.cwd(), join(resultsDir, name))}.{json,txt}`)
// The log stays when the run failed (it is where the reason is), or with SOAK_KEEP_LOG=1.
if (failures.length === 0 && process.env.SOAK_KEEP_LOG !== '1') rmSync(work, { recursive: true, force: true })
else say(`the gateway's log is kept: ${logFile}`)
process.exit(failures.length === 0 ? 0 : 1)

async function cleanUp (): Promise<void> {
  if (gatewayExit === undefined) {
    gateway.kill('SIGKILL')
    await gatewayExited
  }
  wss.close()
  upstream.closeAllConnections()
  upstream.close()
  await admin(`drop schema if exists ${schema} cascade`).catch((err: Error) => { say(`could not drop schema ${schema}: ${err.message}`) })
}
