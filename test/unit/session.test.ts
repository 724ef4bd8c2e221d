import t from 'tap'
import { isSessionCurrent, newSessionId, newSessionPayload, parseSessionPayload, sessionIdentity, sessionProblem } from '../../src/session/session.js'
import { csrfTokenFor, isCsrfTokenValid, newCsrfSecret } from '../../src/session/csrf.js'
import { deriveKey, deriveKeys } from '../../src/session/keys.js'
import { cookieNames, isGatewayCookie, Sessions, type SessionCheck } from '../../src/session/index.js'
import { pino } from 'pino'
import { RevocationList } from '../../src/session/revocations.js'
import { TestClock } from '../support/clock.js'
import { memorySessionStore, sessionTestApp, startTestSession } from '../support/session-app.js'

const user = { id: 7, username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice', groups: ['g'] }
const DEPLOYMENT = 'd'.repeat(43)
const sid = newSessionId()

t.test('session payload shape is checked, fail closed', async (t) => {
  const p = newSessionPayload(sid, user, 'local', 3600, 1000)
  t.same(parseSessionPayload(JSON.parse(JSON.stringify(p))), p)
  t.same(sessionIdentity(p), { username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice', groups: ['g'] })
  const { sid: _sid, ...withoutSessionId } = p
  t.equal(parseSessionPayload({ ...withoutSessionId, v: 1 }), undefined, 'a version 1 cookie (no session id) is not a session')
  for (const bad of [null, 'x', 1, {}, { ...p, v: 1 }, { ...p, v: 3 }, withoutSessionId, { ...p, sid: '' }, { ...p, sid: 'short' }, { ...p, sid: sid + '!' }, { ...p, sid: 7 }, { ...p, uid: '7' }, { ...p, u: '' }, { ...p, a: 'true' }, { ...p, g: [1] }, { ...p, exp: 1.5 }, { ...p, m: 'saml' }, { ...p, idt: 5 }, { ...p, e: 3 }]) {
    t.equal(parseSessionPayload(bad), undefined, JSON.stringify(bad))
  }
})

t.test('expiry, clock skew, maximum age, logout and revocation', async (t) => {
  const p = newSessionPayload(sid, user, 'local', 3600, 1000)
  const none = { revokedBefore: undefined, ended: false }
  t.ok(isSessionCurrent(p, 1000, 3600, none))
  t.ok(isSessionCurrent(p, 4599, 3600, none))
  t.notOk(isSessionCurrent(p, 4600, 3600, none), 'expired at exp')
  t.notOk(isSessionCurrent(p, 900, 3600, none), 'issued in the future')
  t.notOk(isSessionCurrent(p, 1000, 1800, none), 'longer-lived than SESSION_MAX_AGE allows now')
  t.notOk(isSessionCurrent(p, 1000, 3600, { revokedBefore: undefined, ended: true }), 'ended (logout)')
  t.notOk(isSessionCurrent(p, 1000, 3600, { revokedBefore: 1001, ended: false }), 'revoked a second after it was issued')
  t.ok(isSessionCurrent(p, 1000, 3600, { revokedBefore: 1000, ended: false }), 'revoked in its issue second: the revocation ended the record if it came first')
  t.ok(isSessionCurrent(p, 1000, 3600, { revokedBefore: 999, ended: false }), 'revoked before it was issued')
  t.notOk(isSessionCurrent(p, 1000, 3600, { revokedBefore: Number.POSITIVE_INFINITY, ended: false }), 'disabled user')
})

t.test('an SSO session names its provider (OIDC_PROVIDERS); one no longer configured is refused', async (t) => {
  const p = newSessionPayload(sid, user, 'oidc', 3600, 1000, { provider: 'partner' })
  t.equal(p.p, 'partner')
  t.same(parseSessionPayload(JSON.parse(JSON.stringify(p))), p, 'the provider survives the cookie')
  t.equal(newSessionPayload(sid, user, 'local', 3600, 1000, { provider: 'partner' }).p, undefined, 'a local session names none')
  for (const bad of ['', 'Partner', 'a_b', 'x'.repeat(33), 5]) t.equal(parseSessionPayload({ ...p, p: bad }), undefined, `provider ${JSON.stringify(bad)}`)
  const configured = (ids: string[]): { revokedBefore: undefined, ended: false, providers: ReadonlySet<string> } => ({ revokedBefore: undefined, ended: false, providers: new Set(ids) })
  t.equal(sessionProblem(p, 1000, 3600, configured(['corp', 'partner'])), undefined, 'its provider is configured')
  t.equal(sessionProblem(p, 1000, 3600, configured(['corp'])), 'provider-removed', 'its provider was removed from OIDC_PROVIDERS')
  t.equal(sessionProblem(p, 1000, 3600, configured([])), 'provider-removed', 'OIDC_PROVIDERS unset since')
  const unnamed = newSessionPayload(sid, user, 'oidc', 3600, 1000)
  t.equal(sessionProblem(unnamed, 1000, 3600, configured(['corp'])), undefined, 'a session from before OIDC_PROVIDERS belongs to the first provider')
})

t.test('session ids are random and well-formed', async (t) => {
  const ids = new Set(Array.from({ length: 1000 }, () => newSessionId()))
  t.equal(ids.size, 1000, 'no repeats')
  for (const id of ids) t.match(id, /^[\w-]{22}$/)
})

t.test('keys are bound to the secret, the purpose and the deployment', async (t) => {
  const hex = (b: Buffer): string => b.toString('hex')
  const key = deriveKey('k'.repeat(32), DEPLOYMENT, 'session-cookie-v1')
  t.equal(key.length, 32)
  t.equal(hex(deriveKey('k'.repeat(32), DEPLOYMENT, 'session-cookie-v1')), hex(key), 'deterministic: replicas of one deployment agree')
  t.not(hex(deriveKey('k'.repeat(32), 'e'.repeat(43), 'session-cookie-v1')), hex(key), 'another deployment, same SECRET_KEY: another key')
  t.not(hex(deriveKey('k'.repeat(32), DEPLOYMENT, 'csrf-v1')), hex(key), 'one key per purpose')
  t.not(hex(deriveKey('o'.repeat(32), DEPLOYMENT, 'session-cookie-v1')), hex(key), 'one key per secret')
  t.same(deriveKeys(['k'.repeat(32), 'o'.repeat(32)], DEPLOYMENT, 'session-cookie-v1').map(hex),
    [hex(key), hex(deriveKey('o'.repeat(32), DEPLOYMENT, 'session-cookie-v1'))], 'rotation: current key first, then the previous ones')
})

t.test('CSRF tokens are bound to the browser secret and the key', async (t) => {
  const key = deriveKey('k'.repeat(32), DEPLOYMENT, 'csrf-v1')
  const secret = newCsrfSecret()
  const token = csrfTokenFor(key, secret)
  t.ok(isCsrfTokenValid(key, secret, token))
  t.notOk(isCsrfTokenValid(key, newCsrfSecret(), token), 'other browser')
  t.notOk(isCsrfTokenValid(deriveKey('o'.repeat(32), DEPLOYMENT, 'csrf-v1'), secret, token), 'other key')
  t.notOk(isCsrfTokenValid(key, undefined, token), 'no cookie')
  t.notOk(isCsrfTokenValid(key, secret, undefined), 'no token')
  t.notOk(isCsrfTokenValid(key, secret, token.slice(1)), 'truncated')
  t.notOk(isCsrfTokenValid(key, 'short', csrfTokenFor(key, 'short')), 'malformed secret')
})

t.test('cookie names', async (t) => {
  t.same(cookieNames(true), { session: '__Host-authgate', csrf: '__Host-authgate_csrf', oidcPrefix: '__Host-authgate_oidc_', device: '__Host-authgate_device' })
  t.same(cookieNames(false), { session: 'authgate', csrf: 'authgate_csrf', oidcPrefix: 'authgate_oidc_', device: 'authgate_device' })
  for (const n of ['authgate', '__Host-authgate', 'authgate_csrf', '__Host-authgate_oidc_ab', 'authgate_device', '__Host-authgate_device']) t.ok(isGatewayCookie(n), n)
  for (const n of ['authgatex', 'session', '__Host-other', 'x_authgate']) t.notOk(isGatewayCookie(n), n)
})

t.test('Sessions.check says why a request has no session, and recheck why a session is over', async (t) => {
  const { users, records } = await memorySessionStore(t)
  const clock = TestClock.atWholeSecond()
  // Refreshed by hand below (the timer is never started).
  const revocations = new RevocationList(users, records, pino({ level: 'silent' }), 60_000, clock)
  await revocations.refresh()
  const refused: string[] = []
  const sessions = new Sessions({ secretKeys: ['s'.repeat(40)], deploymentId: DEPLOYMENT, secure: false, maxAge: 3600 },
    { revocations, records, refused: (reason) => { refused.push(reason) }, clock })
  const app = await sessionTestApp(sessions, users)
  t.teardown(async () => { await app.close() })

  const check = async (cookie?: string): Promise<SessionCheck> =>
    (await app.inject({ url: '/check', ...(cookie !== undefined ? { cookies: { authgate: cookie } } : {}) })).json()
  const sealed = (value: unknown): string => app.encodeSecureSession(app.createSecureSession({ s: value } as never))
  const now = Math.floor(clock.now() / 1000)

  t.same(await check(), { ok: false, reason: 'absent' }, 'no cookie: absent, and not counted')
  t.same(refused, [])
  t.same(await check('bm90IGEgc2Vzc2lvbg==;AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), { ok: false, reason: 'unreadable' }, 'not the gateway\'s encryption')
  t.same(await check(sealed({ v: 1, u: 'alice' })), { ok: false, reason: 'malformed' }, 'decrypted, but not a payload')
  t.same(await check(sealed(newSessionPayload(newSessionId(), { ...user, id: 99 }, 'local', 3600, now + 600))), { ok: false, reason: 'issued-in-future' })
  t.same(await check(sealed(newSessionPayload(newSessionId(), { ...user, id: 99 }, 'local', 7200, now))), { ok: false, reason: 'too-long' }, 'longer than maxAge')

  const alice = await startTestSession(app, 'alice')
  const aliceChecked = await check(alice)
  t.match(aliceChecked, { ok: true, session: { u: 'alice', iat: now, exp: now + 3600 } }, 'a session just started')
  const alicePayload = aliceChecked.ok ? aliceChecked.session : t.fail('no session') as never

  const bob = await startTestSession(app, 'bob')
  const bobChecked = await check(bob)
  await app.inject({ method: 'POST', url: '/logout', cookies: { authgate: bob } })
  t.same(await check(bob), { ok: false, reason: 'ended' }, 'signed out: a copy of the cookie is refused')
  t.same(sessions.recheck(bobChecked.ok ? bobChecked.session : t.fail('no session') as never), { ok: false, reason: 'ended' })

  const carol = await startTestSession(app, 'carol')
  const dave = await startTestSession(app, 'dave')
  clock.advance(1000)
  await users.revokeSessions('carol', new Date(clock.now()))
  await users.setActive('dave', false)
  await revocations.refresh()
  t.same(await check(carol), { ok: false, reason: 'revoked' }, 'issued before the user\'s revocation')
  t.same(await check(dave), { ok: false, reason: 'disabled' }, 'the user is disabled')

  t.same(sessions.recheck(alicePayload), { ok: true, session: alicePayload }, 'still current, until...')
  clock.advance(3599 * 1000)
  t.same(await check(alice), { ok: false, reason: 'expired' }, '...its expiry, by the clock')
  t.same(sessions.recheck(alicePayload), { ok: false, reason: 'expired' })

  t.same(refused, ['unreadable', 'malformed', 'issued-in-future', 'too-long', 'ended', 'revoked', 'disabled', 'expired'],
    'every refusal of a request with a cookie is counted, once; rechecks are not')
})
