// ACCESS_RULES through the real gateway: a signed-in user whom a rule keeps out gets 403 (a page for
// navigations, JSON otherwise) and the upstream never sees the request, whatever spelling of the
// path is sent (encoded letters and slashes, dot segments, ";params", "//", double encoding);
// missing sessions stay 401/302, SKIP_AUTH_PATHS stay outside the rules, WebSocket upgrades are
// refused before any upstream connection; refusals are counted and logged without the query.
import t from 'tap'
import { once } from 'node:events'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import WebSocket from 'ws'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { scrape } from '../support/metrics.js'
import { logCapture } from '../support/log-capture.js'
import { newSessionId, newSessionPayload } from '../../src/session/session.js'

const RULES = '/admin=admin;/reports=user:alice;/admin/public-ish=user:bob'
const upstream = await startUpstream()
t.teardown(upstream.close)
const log = logCapture()
const gw = await startGateway({ ACCESS_RULES: RULES, ADMIN_USERNAMES: 'root', SKIP_AUTH_PATHS: '/static/' }, { upstream: upstream.url, logger: log.logger })
t.teardown(gw.close)
const signIn = async (username: string): Promise<string> => cookieHeader((await loginLocal(gw.url, username)).cookies)
const root = await signIn('root')
const alice = await signIn('alice')
const bob = await signIn('bob')
const carol = await signIn('carol')

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }

/** One request with the request target sent exactly as written (fetch and URL would normalise it). */
async function send (base: string, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path: target, method, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}
const api = async (cookie: string, target: string): Promise<Answer> => await send(gw.url, target, { cookie, accept: 'application/json' })
const last = (): (typeof upstream.received)[number] => upstream.received.at(-1)!

// Every one of these is /admin (or below it) to some upstream: an encoded letter or slash, a
// dot segment (plain, encoded, double-encoded, with ";params"), merged slashes, backslashes.
const ADMIN_SPELLINGS = ['/admin', '/admin/', '/admin/x', '/ADMIN', '/Admin/Users?page=2', '/%61dmin', '/%41DMIN/x', '/admin%2Fx', '/admin%2fx',
  '/x/../admin', '/x/%2e%2e/admin', '/x/..%2Fadmin', '/x%2F..%2Fadmin', '/x/%252e%252e/admin', '/x/..;/admin', '/x/..%3B/admin',
  '/admin;jsessionid=1', '//admin', '///admin/x', '/x/..//admin', '/x\\..\\admin', '/x/%5c..%5cadmin', '/./admin']

t.test('a non-admin gets 403 under /admin in every spelling, and the upstream sees none of it', async (t) => {
  const before = upstream.received.length
  for (const target of ADMIN_SPELLINGS) {
    const res = await api(carol, target)
    t.equal(res.status, 403, target)
    t.same(JSON.parse(res.body), { error: 'forbidden' }, `${target}: JSON for API clients`)
    t.equal(res.headers['cache-control'], 'no-store', `${target}: not cached`)
  }
  // Still encoded after three rounds of decoding: no reading can be trusted, so nobody passes.
  for (const cookie of [carol, root]) t.equal((await api(cookie, '/%2525252561dmin')).status, 403, 'an ambiguous path is refused, even to an admin')
  t.equal(upstream.received.length, before, 'no refused request reached the upstream')
})

t.test('a browser navigation gets the 403 page: who is signed in, security headers, no caching', async (t) => {
  const page = await send(gw.url, '/admin/settings?tab=1', { cookie: carol, accept: 'text/html,application/xhtml+xml' })
  t.equal(page.status, 403)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(page.headers['cache-control'], 'no-store')
  t.match(page.headers['content-security-policy'], /default-src 'none'/)
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.match(page.body, /Not allowed/)
  t.match(page.body, /signed in as carol\b/)
  t.match(page.body, /href="\/logout"/, 'the way out: sign out (to use another account)')
  t.notMatch(page.body, /tab=1/, 'the query is not echoed')
  const post = await send(gw.url, '/admin', { cookie: carol, accept: 'text/html' }, 'POST')
  t.equal(post.status, 403, 'a POST is no navigation')
  t.same(JSON.parse(post.body), { error: 'forbidden' })

  // Usernames cannot hold markup today; the page escapes it all the same (a cookie made with the real key).
  const { user } = await gw.users.create({ username: 'dave' })
  const now = Math.floor(Date.now() / 1000)
  const forged = gw.app.createSecureSession({ s: newSessionPayload(newSessionId(), { ...user, username: '<img src=x onerror=alert(1)>' }, 'local', 3600, now) } as never)
  const odd = await send(gw.url, '/admin', { cookie: 'authgate=' + encodeURIComponent(gw.app.encodeSecureSession(forged)), accept: 'text/html' })
  t.equal(odd.status, 403)
  t.notMatch(odd.body, /<img src=x/, 'no markup from the username')
  t.match(odd.body, /&lt;img src=x onerror=alert\(1\)&gt;/, 'shown as text')
})

t.test('an admin passes under /admin with identity headers; the upstream gets the checked path', async (t) => {
  for (const target of ['/admin', '/admin/', '/admin/users?page=2', '/ADMIN/x', '/%61dmin/x']) {
    const res = await api(root, target)
    t.equal(res.status, 200, target)
    t.equal(last().url, target, `${target} proxied as sent`)
    t.equal(last().headers['x-user'], 'root')
    t.equal(last().headers['x-admin'], 'true')
    t.ok(typeof last().headers['x-auth-signature'] === 'string', 'signed')
  }
})

t.test('uncovered paths and other segments are open to everyone signed in', async (t) => {
  for (const cookie of [carol, bob]) {
    for (const target of ['/', '/administrator', '/admin-tools', '/adminx', '/x/admin', '/report', '/reportsx', '/api/admin', '/a%2Fb']) {
      const res = await api(cookie, target)
      t.equal(res.status, 200, target)
      t.equal(last().url, target)
    }
  }
})

t.test('user: rules, and the longest rule decides', async (t) => {
  for (const target of ['/reports', '/reports/', '/reports/2024?week=2', '/REPORTS/x']) t.equal((await api(alice, target)).status, 200, `alice: ${target}`)
  for (const target of ['/reports', '/reports/2024', '/Reports', '/x/../reports']) t.equal((await api(bob, target)).status, 403, `bob: ${target}`)
  t.equal((await api(root, '/reports')).status, 403, 'user:alice means alice: being admin is not enough')

  // /admin/public-ish has its own rule (user:bob), longer than /admin's: it alone decides there.
  for (const target of ['/admin/public-ish', '/admin/public-ish/', '/admin/public-ish/page', '/ADMIN/Public-Ish']) {
    t.equal((await api(bob, target)).status, 200, `bob: ${target}`)
    t.equal(last().headers['x-user'], 'bob')
  }
  t.equal((await api(root, '/admin/public-ish')).status, 403, 'the admin: the longer rule names bob only')
  t.equal((await api(carol, '/admin/public-ish')).status, 403)
  t.equal((await api(bob, '/admin')).status, 403, 'bob: /admin itself is still for admins')
  t.equal((await api(bob, '/admin/public-ishx')).status, 403, 'a longer name is another segment: /admin decides')
  t.equal((await api(bob, '/admin/public-ish/..%2Fusers')).status, 403, 'a reading that leaves bob\'s prefix must pass too')
  t.equal((await api(root, '/admin/users')).status, 200)
})

t.test('no session: 401 or the login redirect as before, never 403', async (t) => {
  const before = upstream.received.length
  for (const target of ['/admin', '/%61dmin', '/reports', '/x/..%2Fadmin', '/%2525252561dmin']) {
    const res = await send(gw.url, target, { accept: 'application/json' })
    t.equal(res.status, 401, target)
    t.same(JSON.parse(res.body), { error: 'unauthenticated' })
  }
  const nav = await send(gw.url, '/admin/x', { accept: 'text/html' })
  t.equal(nav.status, 302)
  t.equal(nav.headers.location, '/login?next=%2Fadmin%2Fx')
  t.equal((await send(gw.url, '/admin', { cookie: 'authgate=forged', accept: 'application/json' })).status, 401, 'a bad cookie is no session')
  t.equal(upstream.received.length, before)
})

t.test('SKIP_AUTH_PATHS stay outside the rules; spellings that leave them do not', async (t) => {
  const everything = await startGateway({ ACCESS_RULES: '/=admin', ADMIN_USERNAMES: 'root', SKIP_AUTH_PATHS: '/static/' }, { upstream: upstream.url })
  t.teardown(everything.close)
  const someone = cookieHeader((await loginLocal(everything.url, 'carol')).cookies)
  const boss = cookieHeader((await loginLocal(everything.url, 'root')).cookies)
  t.equal((await send(everything.url, '/static/app.css')).status, 200, 'no session needed')
  t.equal((await send(everything.url, '/static/app.css', { cookie: someone })).status, 200, 'nor any rule for a signed-in user')
  t.equal(last().headers['x-user'], undefined, 'and no identity')
  t.equal((await send(everything.url, '/projects', { cookie: someone, accept: 'application/json' })).status, 403, '"/" covers the rest')
  t.equal((await send(everything.url, '/static/..%2Fprojects', { cookie: someone, accept: 'application/json' })).status, 403, 'an encoded way out of /static/ is not skipped')
  t.equal((await send(everything.url, '/projects', { cookie: boss, accept: 'application/json' })).status, 200)
  t.equal((await api(carol, '/static/admin')).status, 200, 'main gateway: /static/admin is skipped, not under /admin')
})

t.test('refusals are counted by reason and decision, and logged without the query', async (t) => {
  const metrics = async (): Promise<Awaited<ReturnType<typeof scrape>>> => await scrape(gw.url + '/_authgate/metrics')
  const before = await metrics()
  const refusals = (m: typeof before, reason: string): number => m.value('authgate_access_refusals_total', { reason }) ?? NaN
  const forbidden = (m: typeof before): number => m.value('authgate_request_duration_seconds_count', { decision: 'forbidden' }) ?? NaN
  t.equal(refusals(before, 'no-reported-uri'), 0, 'every reason present from the start')
  const seen = log.lines().length
  t.equal((await api(carol, '/admin/users?token=s3cr3t-value')).status, 403)
  t.equal((await send(gw.url, '/%2525252561dmin?token=s3cr3t-value', { cookie: carol, accept: 'text/html' })).status, 403)
  t.equal((await api(carol, '/administrator?token=s3cr3t-value')).status, 200)
  t.equal((await send(gw.url, '/admin?token=s3cr3t-value', { accept: 'application/json' })).status, 401)
  const after = await metrics()
  t.equal(refusals(after, 'rule') - refusals(before, 'rule'), 1)
  t.equal(refusals(after, 'ambiguous-path') - refusals(before, 'ambiguous-path'), 1)
  t.equal(refusals(after, 'no-reported-uri'), 0, 'only forward-auth has URIs to report')
  t.equal(forbidden(after) - forbidden(before), 2, 'request decision "forbidden"')

  const lines = log.lines().slice(seen)
  const refused = lines.filter((l) => l.msg === 'refused by ACCESS_RULES')
  t.equal(refused.length, 2)
  t.match(refused[0], { user: 'carol', reason: 'rule', rule: '/admin' })
  t.match(refused[1], { user: 'carol', reason: 'ambiguous-path' })
  t.notOk('rule' in refused[1]!, 'an ambiguous path names no rule')
  t.notOk(JSON.stringify(lines).includes('s3cr3t'), 'no line has the query string')
  const line = lines.find((l) => l.msg === 'request' && l.reqId === refused[0]!.reqId)
  t.match(line, { path: '/admin/users', status: 403 }, 'the request line, same request id, has the path and the status')
})

t.test('WebSocket upgrades: refused with 403 before any upstream connection, an admin\'s go through', async (t) => {
  const ws = await startWsUpstream()
  const wsGateway = await startGateway({ ACCESS_RULES: RULES, ADMIN_USERNAMES: 'root' }, { upstream: ws.url })
  t.teardown(async () => { await wsGateway.close(); await ws.close() })
  const base = wsGateway.url.replace(/^http/, 'ws')
  const someone = cookieHeader((await loginLocal(wsGateway.url, 'carol')).cookies)
  const boss = cookieHeader((await loginLocal(wsGateway.url, 'root')).cookies)
  const open = async (path: string, cookie: string): Promise<WebSocket | { status: number, body: string }> => {
    const socket = new WebSocket(base + path, { headers: { cookie } })
    return await new Promise((resolve, reject) => {
      socket.once('open', () => { resolve(socket) })
      socket.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (c: Buffer) => { body += c.toString() })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      })
      socket.once('error', reject)
    })
  }
  for (const path of ['/admin/socket', '/%61dmin/socket', '/x/..%2Fadmin/socket', '//admin/socket']) {
    const refused = await open(path, someone)
    t.same(refused instanceof WebSocket ? 'opened' : { status: refused.status, body: JSON.parse(refused.body) }, { status: 403, body: { error: 'forbidden' } }, path)
  }
  // One round-trip to the gateway afterwards: anything the upgrades had started would show by now.
  t.equal((await http(`${wsGateway.url}/_authgate/healthz`)).status, 200)
  t.equal(ws.connections, 0, 'no TCP connection reached the upstream')
  t.equal(ws.handshakes.length, 0)

  const admitted = await open('/admin/socket', boss)
  if (!(admitted instanceof WebSocket)) throw new Error(`expected 101, got ${admitted.status}`)
  const reply = once(admitted, 'message')
  admitted.send('whoami')
  const [data] = await reply as [Buffer]
  t.same(JSON.parse(data.toString()), { user: 'root', url: '/admin/socket' })
  admitted.close()
  const other = await open('/socket', someone)
  t.ok(other instanceof WebSocket, 'an uncovered path upgrades for everyone signed in')
  if (other instanceof WebSocket) other.close()
})
