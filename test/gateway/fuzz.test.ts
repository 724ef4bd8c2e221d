// Deterministic fuzzing of the live gateway with malformed HTTP/1.1: odd methods, request targets
// with random bytes and escapes, forged identity headers in every spelling, broken cookies, framing
// conflicts. Whatever arrives, the gateway answers with a deliberate status (never a 5xx except 502
// from a deliberately dead upstream), keeps running, logs no secret, and nothing without a session
// reaches the upstream except SKIP_AUTH_PATHS, and then without identity.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { pino } from 'pino'
import { startGateway, HEADER_SIGNING_SECRET, SECRET_KEY, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { loggerOptions } from '../../src/logger.js'

const SEED = 0x5eed2026
const REQUESTS = 2000
const SKIP = '/static/,/healthz'

/** mulberry32: small, fast, and the same sequence on every run. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const random = prng(SEED)
const int = (n: number): number => Math.floor(random() * n)
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
const chance = (p: number): boolean => random() < p

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'get', 'G ET', 'GET\t', 'BREW', 'M-SEARCH', '']
const SEGMENTS = ['', '.', '..', '%2e', '%2E%2e', '..;', '.;x', '..%3b', '%3b', ';', ';jsessionid=1', '%2f', '%2F..', '%5c', '\\', '\\..', '%00', '%0d%0a', '%zz', '%', '%%', '%252e%252e',
  'static', 'healthz', 'healthzz', 'admin', 'login', 'logout', '_authgate', 'auth', 'oidc', 'callback', 'api', 'a b', '"', '<x>', '{}', '|', '^', '`', '~', '@evil.com', ':', 'é', '\u00ff', '\u0085', '\u2028', 'ａｄｍｉｎ']
const IDENTITY = ['X-User', 'x-user', 'X_User', 'x.user', 'X-USER', 'X-Admin', 'x_admin', 'X-Email', 'X-Full-Name', 'x.full_name', 'X-Groups', 'X-Auth-Timestamp', 'X-Auth-Signature', 'x_auth_signature', 'X-Identity-Assertion', 'X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Uri', 'X-Original-URL', 'Forwarded', 'X-Real-IP']
const VALUES = ['mallory', 'admin', 'true', 'v1=' + '0'.repeat(64), '1', '', ' ', 'a%0d%0aSet-Cookie:%20x=1', '%E0%A4%A', '../../etc', 'e30.e30.', '127.0.0.1, 10.0.0.1', 'for=1.2.3.4;host=evil', '//evil.com', 'x'.repeat(3000)]

interface Generated { bytes: Buffer, withSession: boolean, halfClose: boolean }

function randomText (length: number): string {
  let s = ''
  for (let i = 0; i < length; i++) s += String.fromCharCode(chance(0.85) ? 0x21 + int(94) : int(256))
  return s
}

function target (): string {
  const roll = random()
  if (roll < 0.03) return '*'
  if (roll < 0.06) return pick(['http://gw/static/x', 'https://evil.com/', 'HTTP://gw/admin', 'gw:443', 'static/x', '?x=1'])
  if (roll < 0.08) return '/' + 'a/'.repeat(1000 + int(6000))
  const prefix = pick(['/', '/', '/', '/static/', '/static/', '/healthz', '/healthz/', '//', '/\\', '/_authgate/', '/login', '/auth/oidc/callback'])
  const segments = Array.from({ length: int(6) }, () => chance(0.15) ? encodeURIComponent(randomText(1 + int(6))) : chance(0.1) ? randomText(1 + int(4)) : pick(SEGMENTS))
  let path = prefix + segments.join('/')
  if (chance(0.3)) path += '?' + pick(['next=//evil.com', 'next=%2F%2Fevil', 'state=' + 'A'.repeat(32), 'code=x&state=y', 'redirect=true', 'a=1&a=2', randomText(int(20)), '%zz', '__proto__[x]=1'])
  if (chance(0.05)) path += '#' + randomText(4)
  return path
}

function cookies (session: string): { header: string | undefined, withSession: boolean } {
  if (chance(0.25)) return { header: undefined, withSession: false }
  const withSession = chance(0.2)
  const parts: string[] = []
  if (withSession) parts.push(session)
  for (let i = int(4); i > 0; i--) {
    parts.push(pick([
      () => 'authgate=' + randomText(int(200)).replace(/[;\s]/g, ''),
      () => 'authgate=' + Buffer.from(randomText(60)).toString('base64') + ';' + Buffer.from(randomText(24)).toString('base64'),
      () => '__Host-authgate=' + randomText(40).replace(/[;\s]/g, ''),
      () => 'authgate_csrf=' + 'A'.repeat(43),
      () => 'authgate_oidc_' + 'B'.repeat(32) + '=v1.' + Buffer.from(randomText(50)).toString('base64url'),
      () => 'app=' + randomText(10).replace(/[;\s]/g, ''),
      () => randomText(int(30)),
      () => '=' + randomText(5),
      () => 'authgate'
    ])())
  }
  return { header: parts.join(pick(['; ', ';', ' ; '])), withSession }
}

function generate (session: string): Generated {
  const method = pick(METHODS)
  const version = chance(0.9) ? 'HTTP/1.1' : pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', 'HTTP/9', ''])
  const headers: string[] = []
  if (chance(0.95)) headers.push('Host: ' + (chance(0.9) ? 'gw.example' : randomText(10)))
  if (chance(0.05)) headers.push('Host: other.example')
  const cookie = cookies(session)
  if (cookie.header !== undefined) headers.push('Cookie: ' + cookie.header)
  if (chance(0.5)) headers.push('Accept: ' + pick(['text/html', 'application/json', '*/*', 'text/html,application/xhtml+xml', randomText(10)]))
  for (let i = int(8); i > 0; i--) headers.push(`${pick(IDENTITY)}: ${pick(VALUES)}`)
  if (chance(0.05)) for (let i = 0; i < 100 + int(3000); i++) headers.push(`X-H${i}: v`)
  if (chance(0.05)) headers.push(`${randomText(1 + int(10))}: ${randomText(int(20))}`)
  if (chance(0.1)) headers.push('Expect: ' + pick(['100-continue', 'something-else']))
  if (chance(0.05)) headers.push('Upgrade: ' + pick(['h2c', 'websocket', 'x']), 'Connection: upgrade')
  let body = ''
  const framing = random()
  if (framing < 0.15) {
    body = randomText(int(300))
    headers.push('Content-Type: ' + pick(['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', randomText(8)]))
    headers.push('Content-Length: ' + Buffer.byteLength(body, 'latin1'))
  } else if (framing < 0.22) {
    body = `${pick(['5', 'zz', '-1', 'ffffffffffffffff', '5;ext=1'])}\r\nhello\r\n0\r\n\r\n`
    headers.push('Transfer-Encoding: ' + pick(['chunked', 'gzip, chunked', 'chunked, identity', ' chunked', 'CHUNKED']))
    if (chance(0.5)) headers.push('Content-Length: ' + pick(['4', '0', '100']))
  } else if (framing < 0.25) {
    headers.push('Content-Length: ' + pick(['-1', '1e3', '0x10', '5, 6', '99999999999999999999']))
  }
  headers.push('Connection: close')
  const head = `${method} ${target()} ${version}`.trim() + '\r\n' + headers.join('\r\n') + '\r\n\r\n'
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body, 'latin1')]), withSession: cookie.withSession, halfClose: chance(0.1) }
}

/** Send the bytes (and half-close, as some clients do), and read until the gateway closes (or 5 s pass: a hang is a failure). */
async function send (url: string, bytes: Buffer, halfClose: boolean): Promise<{ status: number, raw: string, timedOut: boolean }> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    let raw = ''
    let done = false
    const finish = (timedOut: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''))?.[1] ?? 0), raw, timedOut })
    }
    const timer = setTimeout(() => { finish(true) }, 5000)
    // Mostly a complete request (it says Connection: close), sometimes a client that hangs up at once.
    socket.on('connect', () => { if (halfClose) socket.end(bytes); else socket.write(bytes) })
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      raw += chunk
      // A switched protocol would wait for frames; its status line is all this test needs.
      if (raw.startsWith('HTTP/1.1 101')) finish(false)
    })
    socket.on('error', () => { finish(false) })
    socket.on('close', () => { finish(false) })
  })
}

const isSkipPath = (url: string): boolean => {
  const path = url.split('?', 1)[0]!
  return path.startsWith('/static/') || path === '/healthz' || path.startsWith('/healthz/')
}
const IDENTITY_NAMES = /^x[-_.](user|admin|email|full[-_.]name|groups|auth[-_.]timestamp|auth[-_.]signature|identity[-_.]assertion)$/i

async function fuzz (t: Test, gw: TestGateway, session: string, options: { upstreamDown: boolean }, received: () => Array<{ url: string, rawHeaders: string[], headers: Record<string, unknown> }>): Promise<void> {
  const statuses = new Map<number, number>()
  const failures: string[] = []
  for (let i = 0; i < REQUESTS; i++) {
    const request = generate(session)
    const before = received().length
    const { status, raw, timedOut } = await send(gw.url, request.bytes, request.halfClose)
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    const describe = (): string => JSON.stringify(request.bytes.toString('latin1').slice(0, 300))
    if (timedOut) failures.push(`#${i} no answer within 5 s: ${describe()}`)
    if (status >= 500 && !(options.upstreamDown && (status === 502 || status === 504))) failures.push(`#${i} answered ${status}: ${describe()}\n${raw.slice(0, 400)}`)
    if (/\n\s+at .+:\d+:\d+/.test(raw) || raw.includes(SECRET_KEY) || raw.includes(HEADER_SIGNING_SECRET)) failures.push(`#${i} leaked a stack trace or a secret: ${describe()}`)
    for (const reached of received().slice(before)) {
      const names = reached.rawHeaders.filter((_, n) => n % 2 === 0)
      const identity = names.filter((n) => IDENTITY_NAMES.test(n))
      if (!request.withSession) {
        if (!isSkipPath(reached.url)) failures.push(`#${i} reached the upstream at ${reached.url} without a session: ${describe()}`)
        if (identity.length > 0) failures.push(`#${i} carried identity headers ${identity.join(',')} without a session: ${describe()}`)
      } else if (!isSkipPath(reached.url)) {
        if (identity.map((n) => n.toLowerCase()).sort().join() !== 'x-admin,x-auth-signature,x-auth-timestamp,x-email,x-full-name,x-groups,x-user') failures.push(`#${i} identity headers ${identity.join(',')}: ${describe()}`)
        if (reached.headers['x-user'] !== 'fuzzer' || reached.headers['x-admin'] !== 'false') failures.push(`#${i} forged identity reached the upstream: ${describe()}`)
      }
    }
  }
  t.same(failures.slice(0, 20), [], `${REQUESTS} malformed requests (seed ${SEED}): statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
  const health = await http(`${gw.url}/_authgate/healthz`)
  t.equal(health.status, 200, 'still serving afterwards')
  const own = await http(`${gw.url}/anything`, { headers: { cookie: session, accept: 'application/json' } })
  t.equal(own.status, options.upstreamDown ? 502 : 200, 'and the real session still works')
}

t.test('a live upstream: only sessions and SKIP_AUTH_PATHS get through', async (t) => {
  const upstream = await startUpstream()
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), { write: (line: string) => { lines.push(line) } })
  const gw = await startGateway({ SKIP_AUTH_PATHS: SKIP, ADMIN_USERNAMES: 'boss' }, { upstream: upstream.url, logger })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const session = cookieHeader((await loginLocal(gw.url, 'fuzzer')).cookies)
  await fuzz(t, gw, session, { upstreamDown: false }, () => upstream.received as never)
  t.ok(upstream.received.length > 0, 'some requests were proxied (the fuzzer is not refused wholesale)')
  const sessionValue = session.split('=').slice(1).join('=')
  t.notOk(lines.some((l) => l.includes(sessionValue)), 'the session cookie is never logged')
  t.same(lines.filter((l) => /"level":(50|60)/.test(l)).slice(0, 5), [], 'nothing logged as an error')
})

t.test('a dead upstream: 502, never another 5xx', async (t) => {
  const gw = await startGateway({ SKIP_AUTH_PATHS: SKIP }, { upstream: 'http://127.0.0.1:9' })
  t.teardown(gw.close)
  const session = cookieHeader((await loginLocal(gw.url, 'fuzzer')).cookies)
  await fuzz(t, gw, session, { upstreamDown: true }, () => [])
})
