// A proxied WebSocket ends with its session: expiry, logout, revocation and disabling close both sides with
// 1008 "session ended"; other users' sockets and SKIP_AUTH_PATHS sockets are left alone. Real gateway,
// real ws upstream; sessions are minted with the app's own cookie encoder so one can expire in ~2 s.
import t from 'tap'
import { once } from 'node:events'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { newSessionId, newSessionPayload, type SessionPayload } from '../../src/session/session.js'
import { SessionRepository } from '../../src/db/sessions.js'
import { within } from '../support/within.js'

const upstream = await startWsUpstream()
// Revocations are re-read (and open sockets re-checked) every 50 ms instead of every 5 s.
const gateway = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url, revocationRefreshMs: 50 })
t.teardown(async () => { await gateway.close(); await upstream.close() })

/** Generous bound for anything that should happen within a few refreshes or a ~2 s expiry. */
const BOUND_MS = 10_000

async function sessionFor (gw: TestGateway, username: string, lifetime = 3600): Promise<{ cookie: string, payload: SessionPayload }> {
  const { user } = await gw.users.create({ username })
  const now = Math.floor(Date.now() / 1000)
  const payload = newSessionPayload(newSessionId(), user, 'local', lifetime, now)
  // Its record, as a sign-in writes one: revoking the user ends it.
  await new SessionRepository(gw.db).create({ id: payload.sid, userId: user.id, loginMethod: 'local', createdAt: new Date(now * 1000), expiresAt: new Date(payload.exp * 1000) })
  const session = gw.app.createSecureSession({ s: payload } as never)
  return { cookie: 'authgate=' + encodeURIComponent(gw.app.encodeSecureSession(session)), payload }
}

/** Open a WebSocket through the gateway; resolves with the socket, or with the HTTP status instead of 101. */
async function connect (gw: TestGateway, path: string, cookie?: string): Promise<WebSocket | number> {
  const ws = new WebSocket(gw.url.replace(/^http/, 'ws') + path, cookie !== undefined ? { headers: { cookie } } : {})
  return await new Promise((resolve, reject) => {
    ws.once('open', () => { resolve(ws) })
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0) })
    ws.once('error', reject)
  })
}

async function opened (gw: TestGateway, path: string, cookie?: string): Promise<WebSocket> {
  const ws = await connect(gw, path, cookie)
  if (typeof ws === 'number') throw new Error(`expected 101, got ${ws}`)
  return ws
}

async function roundTrip (ws: WebSocket, message: string): Promise<string> {
  const reply = once(ws, 'message')
  ws.send(message)
  const [data] = await within(reply, BOUND_MS, 'echo') as [Buffer]
  return data.toString()
}

async function closeOf (ws: WebSocket): Promise<{ code: number, reason: string }> {
  const [code, reason] = await within(once(ws, 'close'), BOUND_MS, 'client socket closed') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** The close the upstream sees for its side, once there is one more than `before`. */
async function upstreamCloseAfter (before: number): Promise<{ code: number, reason: string }> {
  await within((async () => { while (upstream.closes.length === before) await new Promise((resolve) => setTimeout(resolve, 10)) })(), BOUND_MS, 'upstream side closed')
  return upstream.closes.at(-1)!
}

const SESSION_ENDED = { code: 1008, reason: 'session ended' }

// Sockets that must survive everything below: another user's, and one on a SKIP_AUTH_PATHS prefix.
const bystander = await sessionFor(gateway, 'bystander')
const bystanderSocket = await opened(gateway, '/socket', bystander.cookie)
const publicSocket = await opened(gateway, '/public/feed')

t.test('a socket whose session expires is closed on both sides with 1008', async (t) => {
  const { cookie, payload } = await sessionFor(gateway, 'expiring', 2)
  const ws = await opened(gateway, '/socket', cookie)
  t.same(JSON.parse(await roundTrip(ws, 'whoami')), { user: 'expiring', url: '/socket' }, 'open and identified before expiry')
  const before = upstream.closes.length
  t.same(await closeOf(ws), SESSION_ENDED, 'client sees 1008 "session ended"')
  t.ok(Math.floor(Date.now() / 1000) >= payload.exp, 'not closed before the session expired')
  t.same(await upstreamCloseAfter(before), SESSION_ENDED, 'upstream side closed with the same code and reason')
  t.equal(await connect(gateway, '/socket', cookie), 401, 'the expired cookie cannot open a new one')
})

const endings: Array<[string, string, (username: string) => Promise<boolean>]> = [
  ['revoking the user\'s sessions closes the socket', 'revoked', async (u) => await gateway.users.revokeSessions(u)],
  ['disabling the user closes the socket', 'disabled', async (u) => await gateway.users.setActive(u, false)]
]
for (const [name, username, end] of endings) {
  t.test(name, async (t) => {
    const { cookie } = await sessionFor(gateway, username)
    const ws = await opened(gateway, '/socket', cookie)
    t.equal(await roundTrip(ws, 'before'), 'before')
    const before = upstream.closes.length
    const closed = closeOf(ws)
    t.ok(await end(username))
    t.same(await closed, SESSION_ENDED, 'client sees 1008 "session ended"')
    t.same(await upstreamCloseAfter(before), SESSION_ENDED, 'upstream side closed too')
    t.equal(await connect(gateway, '/socket', cookie), 401, 'the cookie cannot open a new one')
  })
}

t.test('logging out closes the sockets that session opened, on both sides', async (t) => {
  const { cookies } = await loginLocal(gateway.url, 'leaving')
  const cookie = cookieHeader(cookies)
  const ws = await opened(gateway, '/socket', cookie)
  t.same(JSON.parse(await roundTrip(ws, 'whoami')), { user: 'leaving', url: '/socket' })
  const before = upstream.closes.length
  const closed = closeOf(ws)
  t.equal((await http(`${gateway.url}/logout`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).status, 303)
  t.same(await closed, SESSION_ENDED, 'client sees 1008 "session ended"')
  t.same(await upstreamCloseAfter(before), SESSION_ENDED, 'upstream side closed too')
  t.equal(await connect(gateway, '/socket', cookie), 401, 'a copy of the cookie cannot open a new one')
})

t.test('sockets of other users and on SKIP_AUTH_PATHS stay open and keep working', async (t) => {
  // Several refreshes (and re-checks) have run since the revocations above.
  t.equal(bystanderSocket.readyState, WebSocket.OPEN)
  t.same(JSON.parse(await roundTrip(bystanderSocket, 'whoami')), { user: 'bystander', url: '/socket' })
  t.equal(publicSocket.readyState, WebSocket.OPEN)
  t.same(JSON.parse(await roundTrip(publicSocket, 'whoami')), { user: null, url: '/public/feed' })
  // A socket the client closed itself is forgotten: revoking its user later closes nothing else.
  const { cookie } = await sessionFor(gateway, 'left-early')
  const early = await opened(gateway, '/socket', cookie)
  early.close(1000, 'bye')
  t.same(await closeOf(early), { code: 1000, reason: 'bye' })
  await gateway.users.revokeSessions('left-early')
  t.equal(await roundTrip(bystanderSocket, 'still here'), 'still here')
  bystanderSocket.close()
  publicSocket.close()
  await Promise.all([closeOf(bystanderSocket), closeOf(publicSocket)])
})

t.test('closing the gateway closes its open sockets and leaves nothing running', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url, revocationRefreshMs: 50 })
  const { cookie } = await sessionFor(gw, 'closing')
  const ws = await opened(gw, '/socket', cookie)
  t.equal(await roundTrip(ws, 'before'), 'before')
  const before = upstream.closes.length
  const closed = closeOf(ws)
  // Resolving at all is the point: a socket or a timer kept alive would hold the close (and this
  // test process) open.
  await within(gw.close(), BOUND_MS, 'gateway closed')
  t.equal((await closed).code, 1001, 'client socket closed by the gateway, going away, once the shutdown grace is over')
  t.ok((await upstreamCloseAfter(before)).code > 0, 'upstream side closed too')
})
