import t from 'tap'
import { isSessionCurrent, newSessionId, newSessionPayload, parseSessionPayload, sessionIdentity } from '../../src/session/session.js'
import { csrfTokenFor, isCsrfTokenValid, newCsrfSecret } from '../../src/session/csrf.js'
import { deriveKey, deriveKeys } from '../../src/session/keys.js'
import { cookieNames, isGatewayCookie } from '../../src/session/index.js'

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
