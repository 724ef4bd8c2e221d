// Micro-benchmark of the gateway's own per-request work on a proxied, signed-in request, in isolation
// (one process, no sockets): what src/ adds to each proxied request, step by step as the gateway runs
// them, with a total. The rest of a request's CPU time is Node's HTTP server, Fastify's routing and
// undici, which bench/proxy.ts measures end to end. Target (issue 16): a total of at most 10 µs.
//   node --import tsx bench/hot-path.ts
import { mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { pino } from 'pino'
import { loadConfig } from '../src/config/index.js'
import { openDatabase } from '../src/db/index.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { UserRepository } from '../src/db/users.js'
import { readDeploymentId, SessionRepository } from '../src/db/sessions.js'
import { RevocationList } from '../src/session/revocations.js'
import { Sessions } from '../src/session/index.js'
import { newSessionId, newSessionPayload, sessionIdentity, sessionSubject } from '../src/session/session.js'
import { IdentityIssuer } from '../src/identity/issuer.js'
import { isSkipAuthPath, normalizeRequestTarget, splitTarget } from '../src/proxy/access.js'
import { checkAccess } from '../src/policy/access-rules.js'
import { upstreamRequestHeaders, clientResponseHeaders } from '../src/proxy/forwarding.js'
import { upstreamPath } from '../src/proxy/forward-http.js'
import { accessLogger, loggerOptions } from '../src/logger.js'
import { requestIdGenerator } from '../src/net/request-id.js'

const results: Array<{ name: string, us: number, inTotal: boolean }> = []

function measure (name: string, fn: () => unknown, options: { inTotal?: boolean, iterations?: number } = {}): void {
  const iterations = options.iterations ?? 100_000
  for (let i = 0; i < 20_000; i++) fn() // warm-up (JIT)
  const samples: number[] = []
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / iterations)
  }
  samples.sort((a, b) => a - b)
  const us = samples[2]! / 1000
  results.push({ name, us, inTotal: options.inTotal ?? true })
  console.log(`${(options.inTotal ?? true ? '' : '(not in total) ') + name}`.padEnd(78) + `${us.toFixed(2).padStart(7)} µs/op (median of 5)`)
}

// A gateway's session machinery on a real SQLite database, as bench/gateway.ts builds it.
const dir = mkdtempSync(join(tmpdir(), 'authgate-hot-path-'))
const config = loadConfig({
  SECRET_KEY: 'bench-secret-key-0123456789abcdefghijklmnopqrs',
  HEADER_SIGNING_SECRET: 'bench-header-signing-secret-0123456789abcdef',
  UPSTREAM_URL: 'http://127.0.0.1:5000',
  DATABASE_URL: 'sqlite:./authgate.db',
  SKIP_AUTH_PATHS: '/public/'
}, { cwd: dir, dotenv: false })
const db = openDatabase(config.databaseUrl, { cwd: dir })
await migrateToLatest(db)
const silent = pino({ level: 'silent' })
const users = new UserRepository(db)
const records = new SessionRepository(db)
const revocations = new RevocationList(users, records, silent, 60_000)
await revocations.start()
const deploymentId = await readDeploymentId(db)
const sessions = new Sessions({ secretKeys: config.secretKeys, deploymentId, secure: false, maxAge: config.sessionMaxAge }, { revocations, records })
const app = Fastify()
await sessions.register(app)
await app.ready()
const issuer = new IdentityIssuer(config.headerSigningSecret, undefined)

// A signed-in browser's request, as it reaches the proxy (Node lower-cases the names).
const now = Math.floor(Date.now() / 1000)
const payload = newSessionPayload(newSessionId(), { id: 1, username: 'bench-user', isAdmin: false, email: 'bench@example.com', fullName: 'Bench User', groups: ['staff', 'time-trackers'] }, 'local', config.sessionMaxAge, now)
const session = app.createSecureSession({ s: payload, __ts: now })
const sealed = app.encodeSecureSession(session)
const browserHeaders = {
  host: 'tt.example.com',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.5',
  'accept-encoding': 'gzip, deflate, br, zstd',
  connection: 'keep-alive',
  cookie: `authgate=${sealed}; authgate_csrf=${'b'.repeat(43)}; tt_session=abc123`,
  'upgrade-insecure-requests': '1',
  'sec-fetch-dest': 'document',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-site': 'none'
}
const responseHeaders = { 'content-type': 'text/html; charset=utf-8', 'content-length': '5120', connection: 'keep-alive', 'keep-alive': 'timeout=5', date: new Date().toUTCString(), 'set-cookie': ['tt_session=abc123; Path=/; HttpOnly'] }
const rawUrl = '/timesheet/week?week=12'
const genReqId = requestIdGenerator(false)
const rawRequest = { headers: browserHeaders, socket: { remoteAddress: '127.0.0.1' } } as unknown as Parameters<typeof genReqId>[0]
// The access line, as app.ts writes it, to /dev/null (asynchronously, as the JSON destination does).
const accessLog = accessLogger(pino(loggerOptions('info'), pino.destination({ fd: openSync('/dev/null', 'w'), sync: false, minLength: 4096 })))

console.log(`node ${process.version}`)
measure('request id (genReqId: a UUID)', () => genReqId(rawRequest))
measure('request target normalised (rewriteUrl)', () => normalizeRequestTarget(rawUrl))
measure('Cookie header parsed (@fastify/cookie)', () => app.parseCookie(browserHeaders.cookie))
measure('session cookie decrypted (@fastify/secure-session)', () => app.decodeSecureSession(sealed))
const decoded = app.decodeSecureSession(sealed)!
const request = { session: decoded, cookies: { authgate: sealed } } as unknown as Parameters<typeof sessions.check>[0]
measure('session checked (Sessions.check: shape, expiry, revocations)', () => sessions.check(request))
const checked = sessions.check(request)
if (!checked.ok) throw new Error(`the bench session is refused: ${checked.reason}`)
measure('access decision (SKIP_AUTH_PATHS, no ACCESS_RULES)', () => {
  const target = splitTarget(rawUrl)
  return isSkipAuthPath(target.path, config.skipAuthPaths) || checkAccess(config.accessRules, target.path, sessionSubject(checked.session))
})
measure('identity headers, signed in this second already (IdentitySigner)', () => issuer.signedHeaders(sessionIdentity(checked.session), now))
let second = now
measure('identity headers, a new second each time (one HMAC-SHA256)', () => issuer.signedHeaders(sessionIdentity(checked.session), ++second), { inTotal: false })
const signed = issuer.signedHeaders(sessionIdentity(checked.session), now)
measure('upstream request headers (11 browser headers) and path', () => {
  upstreamPath('/timesheet/week', rawUrl)
  return upstreamRequestHeaders(browserHeaders, { identity: signed, forwardedFor: ['127.0.0.1'], proto: 'https', host: 'tt.example.com', requestId: 'c0ffee00-0000-4000-8000-000000000000' })
})
measure('client response headers (6 headers)', () => clientResponseHeaders(responseHeaders, 'c0ffee00-0000-4000-8000-000000000000'))
measure('access line (pino, JSON, batched to /dev/null)', () => { accessLog.info({ reqId: 'c0ffee00-0000-4000-8000-000000000000', method: 'GET', path: '/timesheet/week', status: 200, ms: 1 }, 'request') }, { iterations: 50_000 })

const total = results.filter((r) => r.inTotal).reduce((sum, r) => sum + r.us, 0)
console.log(`${'total (the steps above marked in total)'.padEnd(78)}${total.toFixed(2).padStart(7)} µs per request (target ≤ 10 µs)`)
revocations.stop()
await app.close()
await db.close()
rmSync(dir, { recursive: true, force: true })
