// The audit trail of the gateway's own sign-in: one event per sign-in, failed sign-in, sign-out,
// account created and admin granted, each with the client's address and the request id the client
// got back; written whatever LOG_LEVEL says, `silent` excepted. Real gateway, its real pino logger.
import t from 'tap'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

type Line = Record<string, unknown>
const auditOf = (lines: Line[]): Line[] => lines.filter((l) => l.audit !== undefined)
/** The event's own fields, without pino's (time, pid, hostname, msg) and the request's. */
const core = ({ audit, user, by, method, reason, admin }: Line): Line =>
  Object.fromEntries(Object.entries({ audit, user, by, method, reason, admin }).filter(([, v]) => v !== undefined))

t.test('local sign-in: created, admin by ADMIN_USERNAMES, signed in, refused, signed out', async (t) => {
  const capture = logCapture('info')
  const gw = await startGateway({ ADMIN_USERNAMES: 'admin,boss' }, { upstream: upstream.url, logger: capture.logger })
  t.teardown(() => gw.close())
  await gw.users.create({ username: 'boss' })
  await gw.users.create({ username: 'dave' })
  await gw.users.setActive('dave', false)

  const newcomer = await loginLocal(gw.url, 'newcomer')
  t.equal(newcomer.response.status, 303)
  const reqId = newcomer.response.headers['x-request-id']
  const events = auditOf(capture.lines())
  t.same(events.map(core), [
    { audit: 'user-created', user: 'newcomer', by: 'user', method: 'local', admin: false },
    { audit: 'sign-in', user: 'newcomer', by: 'user', method: 'local', admin: false }
  ])
  for (const event of events) {
    t.equal(event.reqId, reqId, 'the request id the client got back')
    t.equal(event.ip, '127.0.0.1', 'the client address')
    t.equal(event.level, 30, 'info')
    t.match(event.msg, /^audit: (user-created|sign-in) newcomer$/)
  }

  const before = capture.lines().length
  await loginLocal(gw.url, 'admin')
  await loginLocal(gw.url, 'boss')
  t.same(auditOf(capture.lines().slice(before)).map(core), [
    { audit: 'user-created', user: 'admin', by: 'user', method: 'local', admin: true },
    { audit: 'admin-granted', user: 'admin', by: 'admin-usernames' },
    { audit: 'sign-in', user: 'admin', by: 'user', method: 'local', admin: true },
    { audit: 'admin-granted', user: 'boss', by: 'admin-usernames' },
    { audit: 'sign-in', user: 'boss', by: 'user', method: 'local', admin: true }
  ], 'a new admin, and an existing user promoted at sign-in')

  const failed = capture.lines().length
  const disabled = await loginLocal(gw.url, 'dave')
  t.equal(disabled.response.status, 403)
  t.equal((await loginLocal(gw.url, 'not a name!')).response.status, 400)
  const forged = await http(gw.url + '/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=newcomer' })
  t.equal(forged.status, 403)
  const refusals = auditOf(capture.lines().slice(failed))
  t.same(refusals.map(core), [
    { audit: 'sign-in-failed', user: 'dave', by: 'user', method: 'local', reason: 'disabled' },
    { audit: 'sign-in-failed', by: 'user', method: 'local', reason: 'invalid-username' },
    { audit: 'sign-in-failed', by: 'user', method: 'local', reason: 'csrf' }
  ], 'what was typed is kept only when it is a valid username')
  t.equal(refusals[0]!.reqId, disabled.response.headers['x-request-id'])
  t.notOk(JSON.stringify(capture.lines()).includes('not a name!'), 'an invalid name is not logged')

  const out = capture.lines().length
  const signedOut = await http(gw.url + '/logout', { headers: { cookie: cookieHeader(newcomer.cookies) } })
  t.equal(signedOut.status, 303)
  const [signOut, ...rest] = auditOf(capture.lines().slice(out))
  t.same(core(signOut!), { audit: 'sign-out', user: 'newcomer', by: 'user', method: 'local' })
  t.equal(signOut!.reqId, signedOut.headers['x-request-id'])
  t.same(rest, [])
  t.equal(auditOf(capture.lines()).filter((l) => l.audit === 'sign-out').length, 1, 'a sign-out without a session is not an event')
})

t.test('password sign-in: wrong password, unknown user and throttling are refusals with their reason', async (t) => {
  const capture = logCapture('info')
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { upstream: upstream.url, logger: capture.logger })
  t.teardown(() => gw.close())
  const { hashPassword } = await import('../../src/auth/local/password.js')
  await gw.users.create({ username: 'alice', passwordHash: await hashPassword('correct horse') })
  await loginLocal(gw.url, 'alice', { password: 'wrong' })
  await loginLocal(gw.url, 'ghost', { password: 'wrong' })
  t.same(auditOf(capture.lines()).map(core), [
    { audit: 'sign-in-failed', user: 'alice', by: 'user', method: 'local', reason: 'invalid-credentials' },
    { audit: 'sign-in-failed', user: 'ghost', by: 'user', method: 'local', reason: 'invalid-credentials' }
  ])
  t.notOk(JSON.stringify(capture.lines()).includes('wrong'), 'no password in the log')
  // The throttle's limit for one username at one address is 10 failures in 15 minutes.
  for (let i = 0; i < 10; i++) await loginLocal(gw.url, 'alice', { password: 'wrong' })
  const throttled = auditOf(capture.lines()).find((l) => l.reason === 'throttled')
  t.same(throttled !== undefined ? core(throttled) : undefined, { audit: 'sign-in-failed', user: 'alice', by: 'user', method: 'local', reason: 'throttled' })
})

t.test('written at info whatever LOG_LEVEL says; LOG_LEVEL=silent is silent', async (t) => {
  const quiet = logCapture('error')
  const gw = await startGateway({}, { upstream: upstream.url, logger: quiet.logger })
  t.teardown(() => gw.close())
  await loginLocal(gw.url, 'alice')
  t.same(quiet.lines().filter((l) => l.audit === undefined), [], 'no access lines at LOG_LEVEL=error')
  t.same(quiet.lines().map((l) => [l.audit, l.level]), [['user-created', 30], ['sign-in', 30]], 'the audit events still')

  const silent = logCapture('silent')
  const mute = await startGateway({}, { upstream: upstream.url, logger: silent.logger })
  t.teardown(() => mute.close())
  await loginLocal(mute.url, 'alice')
  t.same(silent.lines(), [])
})

t.test('a sign-in through a trusted front proxy: its client address and its request id', async (t) => {
  const capture = logCapture('info')
  const gw = await startGateway({ TRUST_PROXY: '127.0.0.1' }, { upstream: upstream.url, logger: capture.logger })
  t.teardown(() => gw.close())
  const page = await http(gw.url + '/login')
  const form = new URLSearchParams({ username: 'carol', csrf_token: csrfTokenFrom(page.body), next: '/' })
  const response = await http(gw.url + '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(setCookies(page.headers)), 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'edge-4711' },
    body: form.toString()
  })
  t.equal(response.status, 303)
  t.equal(response.headers['x-request-id'], 'edge-4711')
  const signIn = auditOf(capture.lines()).find((l) => l.audit === 'sign-in')!
  t.equal(signIn.ip, '203.0.113.7')
  t.equal(signIn.reqId, 'edge-4711')
})
