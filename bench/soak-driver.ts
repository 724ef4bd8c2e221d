// The soak's load (bench/soak.ts forks this): its own process, so that the gateway's resident set
// measures the gateway alone and the load's own CPU is not charged to it. It signs in `sessions`
// users through the real login form, keeps `websockets` WebSockets open through the gateway (each
// sending a message now and then and checking the echo), signs in afresh every second, and sends
// `requests` authenticated requests spread over the sessions with `concurrency` in flight on
// keep-alive connections. Every answer is checked: status 200, and the identity the upstream verified
// (it echoes it in x-soak-user) is the session's user. Progress goes to the parent every half
// second; the figures at the end.
import { Pool } from 'undici'
import WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'

export interface DriverSettings {
  base: string
  requests: number
  sessions: number
  websockets: number
  concurrency: number
  /** Milliseconds between two messages on one WebSocket (each socket starts at a random point). */
  wsIntervalMs: number
  /** Longest wait for a WebSocket echo before it counts as an error (ms). */
  wsEchoTimeoutMs: number
}

export interface DriverProgress {
  /** Requests answered (correctly or not). */
  done: number
  errors: number
  signIns: number
  signInErrors: number
  websocketsOpen: number
  websocketMessages: number
}

export interface DriverResult extends DriverProgress {
  /** The session cookies' sign-ins, before the load (not counted in `signIns`). */
  sessionsCreated: number
  websocketsOpened: number
  /** WebSockets that were open and answering at the end of the load. */
  websocketsAliveAtEnd: number
  websocketErrors: number
  loadSeconds: number
  ratePerSecond: number
  latencyMs: { p50: number, p90: number, p99: number, max: number }
  /** The first few errors, described. */
  errorSamples: string[]
  stoppedEarly: boolean
}

type ToDriver = { stop: true }
export type FromDriver =
  | { progress: DriverProgress, stage: 'sessions' | 'websockets' | 'load' }
  | { loaded: true }
  | { result: DriverResult }
  | { failed: string }

const settings = JSON.parse(process.argv[2] ?? '') as DriverSettings
const base = new URL(settings.base)
const wsBase = base.origin.replace(/^http/, 'ws')

/** Set by the parent's time limit: no new request starts. */
const stop = { requested: false }
process.on('message', (message: ToDriver) => { if (message.stop) stop.requested = true })
process.on('disconnect', () => { process.exit(1) })

const counts: DriverProgress = { done: 0, errors: 0, signIns: 0, signInErrors: 0, websocketsOpen: 0, websocketMessages: 0 }
const errorSamples: string[] = []
let websocketErrors = 0
function error (what: string): void {
  if (errorSamples.length < 20) errorSamples.push(what)
}

function send (message: FromDriver): void {
  process.send?.(message)
}

// Sign-ins on their own few connections, as separate browsers would: never queued behind the load.
const signInPool = new Pool(base.origin, { connections: 4, pipelining: 1 })
const loadPool = new Pool(base.origin, { connections: settings.concurrency, pipelining: 1 })

interface Session { username: string, cookie: string }

function cookiePairs (setCookie: string | string[] | undefined): string[] {
  const list = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]
  return list.map((c) => c.split(';', 1)[0] ?? '').filter((pair) => !pair.endsWith('='))
}

const SESSION_COOKIE = /^(__Host-)?authgate=/

/** One sign-in through the real form (GET /login, then POST it with the CSRF cookie and token). */
async function signIn (username: string): Promise<Session> {
  const page = await signInPool.request({ path: '/login', method: 'GET' })
  const html = await page.body.text()
  if (page.statusCode !== 200) throw new Error(`GET /login: ${page.statusCode}`)
  const token = /name="csrf_token" value="([^"]+)"/.exec(html)?.[1]
  if (token === undefined) throw new Error('GET /login: no csrf_token in the page')
  const csrf = cookiePairs(page.headers['set-cookie']).join('; ')
  const posted = await signInPool.request({
    path: '/login',
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrf },
    body: new URLSearchParams({ username, csrf_token: token, next: '/' }).toString()
  })
  await posted.body.dump()
  const cookie = cookiePairs(posted.headers['set-cookie']).find((pair) => SESSION_COOKIE.test(pair))
  if (posted.statusCode !== 303 || cookie === undefined) throw new Error(`POST /login as ${username}: ${posted.statusCode}${cookie === undefined ? ', no session cookie' : ''}`)
  return { username, cookie }
}

const PAD = 'x'.repeat(900)

/** One authenticated request; undefined when it was answered as it should be, else what went wrong. */
async function authenticatedRequest (session: Session, n: number): Promise<string | undefined> {
  // Mostly reads, one in ten a small JSON write: the upstream echoes the body's length.
  const post = n % 10 === 0
  const body = post ? JSON.stringify({ n, pad: PAD }) : undefined
  const { statusCode, headers, body: response } = await loadPool.request({
    path: `/api/items/${n % 997}?page=${n % 7}`,
    method: post ? 'POST' : 'GET',
    headers: { cookie: session.cookie, accept: 'application/json', ...(post ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {})
  })
  const text = await response.text()
  // A browser keeps whatever session cookie the gateway sends back.
  const renewed = cookiePairs(headers['set-cookie']).find((pair) => SESSION_COOKIE.test(pair))
  if (renewed !== undefined) session.cookie = renewed
  if (statusCode !== 200) return `request ${n} as ${session.username}: ${statusCode} ${text.slice(0, 120)}`
  if (headers['x-soak-user'] !== session.username) return `request ${n} as ${session.username}: upstream saw ${String(headers['x-soak-user'])}`
  if (post && headers['x-soak-body-length'] !== String(Buffer.byteLength(body!))) return `request ${n}: upstream got ${String(headers['x-soak-body-length'])} bytes of ${Buffer.byteLength(body!)}`
  return undefined
}

/** An open WebSocket that sends a numbered message every `wsIntervalMs` and expects it back, prefixed with its user. */
class Socket {
  private sent = 0
  private waiting: { text: string, since: number } | undefined
  private timer: NodeJS.Timeout | undefined
  alive = false
  failed = false

  constructor (private readonly index: number, private readonly session: Session) {}

  async open (): Promise<void> {
    const ws = new WebSocket(`${wsBase}/ws/${this.index}`, { headers: { cookie: this.session.cookie } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => { resolve() })
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => { reject(new Error(`WebSocket ${this.index}: handshake answered ${res.statusCode}`)) })
    })
    this.alive = true
    counts.websocketsOpen++
    ws.on('message', (data: Buffer) => {
      const text = data.toString()
      if (this.waiting === undefined || text !== `${this.session.username} ${this.waiting.text}`) this.fail(`WebSocket ${this.index}: unexpected message ${text.slice(0, 80)}`)
      else {
        this.waiting = undefined
        counts.websocketMessages++
      }
    })
    ws.on('close', (code) => { if (this.alive) this.fail(`WebSocket ${this.index}: closed (${code}) during the run`) })
    ws.on('error', (err) => { this.fail(`WebSocket ${this.index}: ${err.message}`) })
    this.ws = ws
    const tick = (): void => {
      if (this.waiting !== undefined) {
        if (Date.now() - this.waiting.since > settings.wsEchoTimeoutMs) this.fail(`WebSocket ${this.index}: no echo within ${settings.wsEchoTimeoutMs} ms`)
        return
      }
      this.ping()
    }
    // Spread over the interval, so that the sockets do not all speak at once.
    this.timer = setTimeout(() => {
      tick()
      this.timer = setInterval(tick, settings.wsIntervalMs)
    }, Math.random() * settings.wsIntervalMs)
  }

  private ws: WebSocket | undefined

  private ping (): void {
    const text = `ping ${this.index} ${++this.sent}`
    this.waiting = { text, since: Date.now() }
    this.ws?.send(text)
  }

  /** One last message, answered: the socket is alive at the end. */
  async check (): Promise<boolean> {
    if (!this.alive) return false
    clearTimeout(this.timer)
    clearInterval(this.timer)
    const deadline = Date.now() + settings.wsEchoTimeoutMs
    while (this.waiting !== undefined && Date.now() < deadline && this.alive) await sleep(20)
    if (!this.alive || this.waiting !== undefined) return false
    this.ping()
    while (this.waiting !== undefined && Date.now() < deadline && this.alive) await sleep(20)
    return this.alive && this.waiting === undefined
  }

  close (): void {
    clearTimeout(this.timer)
    clearInterval(this.timer)
    this.alive = false
    this.ws?.close(1000, 'soak over')
  }

  private fail (what: string): void {
    if (this.failed) return
    this.failed = true
    websocketErrors++
    error(what)
    if (this.alive) counts.websocketsOpen--
    this.alive = false
    clearTimeout(this.timer)
    clearInterval(this.timer)
    this.ws?.terminate()
  }
}

/** Run `count` tasks with at most `width` at once. */
async function inParallel (count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(width, count) }, async () => {
    while (next < count && !stop.requested) await task(next++)
  }))
}

async function run (): Promise<DriverResult> {
  let stage: 'sessions' | 'websockets' | 'load' = 'sessions'
  const progress = setInterval(() => { send({ progress: { ...counts }, stage }) }, 500)

  // The sessions: at most a few sign-ins at once from this one address, as the sign-in throttle
  // counts attempts in progress (src/auth/local/throttle.ts).
  const sessions: Session[] = []
  const username = (i: number): string => `soak-user-${String(i).padStart(5, '0')}`
  await inParallel(settings.sessions, 4, async (i) => { sessions[i] = await signIn(username(i)) })
  if (sessions.length < settings.sessions) throw new Error('stopped while signing in')

  stage = 'websockets'
  const sockets = Array.from({ length: settings.websockets }, (_, i) => new Socket(i, sessions[i % sessions.length]!))
  await inParallel(sockets.length, 8, async (i) => { await sockets[i]!.open() })

  // A fresh sign-in every second for the whole load, each then used once.
  stage = 'load'
  let fresh = 0
  const freshSignIns = setInterval(() => {
    const name = username(fresh++ % settings.sessions)
    void (async () => {
      try {
        const session = await signIn(name)
        const problem = await authenticatedRequest(session, fresh)
        if (problem !== undefined) throw new Error(`with a fresh session: ${problem}`)
        counts.signIns++
      } catch (err) {
        counts.signInErrors++
        error(`fresh sign-in as ${name}: ${(err as Error).message}`)
      }
    })()
  }, 1000)

  const latencies = new Float64Array(settings.requests)
  let issued = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: settings.concurrency }, async () => {
    while (issued < settings.requests && !stop.requested) {
      const n = issued++
      const t0 = performance.now()
      let problem: string | undefined
      try {
        problem = await authenticatedRequest(sessions[n % sessions.length]!, n)
      } catch (err) {
        problem = `request ${n}: ${(err as Error).message}`
      }
      latencies[n] = performance.now() - t0
      counts.done++
      if (problem !== undefined) {
        counts.errors++
        error(problem)
      }
    }
  }))
  const loadSeconds = (performance.now() - started) / 1000
  clearInterval(freshSignIns)
  send({ loaded: true })

  const alive = await Promise.all(sockets.map(async (s) => await s.check()))
  for (const s of sockets) s.close()
  // The sign-in under way when the load ended finishes (or fails) before the figures.
  const deadline = Date.now() + 30_000
  while (counts.signIns + counts.signInErrors < fresh && Date.now() < deadline) await sleep(50)
  if (counts.signIns + counts.signInErrors < fresh) {
    counts.signInErrors += fresh - counts.signIns - counts.signInErrors
    error('a fresh sign-in did not finish within 30 s of the end of the load')
  }
  clearInterval(progress)
  await Promise.all([loadPool.close(), signInPool.close()])

  const measured = latencies.subarray(0, counts.done).sort()
  const pct = (p: number): number => measured.length === 0 ? NaN : measured[Math.min(measured.length - 1, Math.floor(measured.length * p / 100))]!
  return {
    ...counts,
    sessionsCreated: sessions.length,
    websocketsOpened: sockets.length,
    websocketsAliveAtEnd: alive.filter((a) => a).length,
    websocketErrors,
    loadSeconds,
    ratePerSecond: counts.done / loadSeconds,
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: measured.length === 0 ? NaN : measured[measured.length - 1]! },
    errorSamples,
    stoppedEarly: counts.done < settings.requests
  }
}

try {
  send({ result: await run() })
} catch (err) {
  send({ failed: `${(err as Error).message}${errorSamples.length > 0 ? `; earlier: ${errorSamples.join('; ')}` : ''}` })
}
process.disconnect()
