import t from 'tap'
import { isSessionCurrent, newSessionPayload, parseSessionPayload, sessionIdentity } from '../../src/session/session.js'
import { csrfTokenFor, isCsrfTokenValid, newCsrfSecret } from '../../src/session/csrf.js'
import { deriveKey } from '../../src/session/keys.js'
import { cookieNames, isGatewayCookie } from '../../src/session/index.js'

const user = { id: 7, username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice', groups: ['g'] }

t.test('session payload shape is checked, fail closed', async (t) => {
  const p = newSessionPayload(user, 'local', 3600, 1000)
  t.same(parseSessionPayload(JSON.parse(JSON.stringify(p))), p)
  t.same(sessionIdentity(p), { username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice', groups: ['g'] })
  for (const bad of [null, 'x', 1, {}, { ...p, v: 2 }, { ...p, uid: '7' }, { ...p, u: '' }, { ...p, a: 'true' }, { ...p, g: [1] }, { ...p, exp: 1.5 }, { ...p, m: 'saml' }, { ...p, idt: 5 }, { ...p, e: 3 }]) {
    t.equal(parseSessionPayload(bad), undefined, JSON.stringify(bad))
  }
})

t.test('expiry, clock skew, maximum age and revocation', async (t) => {
  const p = newSessionPayload(user, 'local', 3600, 1000)
  t.ok(isSessionCurrent(p, 1000, 3600, undefined))
  t.ok(isSessionCurrent(p, 4599, 3600, undefined))
  t.notOk(isSessionCurrent(p, 4600, 3600, undefined), 'expired at exp')
  t.notOk(isSessionCurrent(p, 900, 3600, undefined), 'issued in the future')
  t.notOk(isSessionCurrent(p, 1000, 1800, undefined), 'longer-lived than SESSION_MAX_AGE allows now')
  t.notOk(isSessionCurrent(p, 1000, 3600, 1000), 'revoked at its issue second')
  t.ok(isSessionCurrent(p, 1000, 3600, 999), 'revoked before it was issued')
  t.notOk(isSessionCurrent(p, 1000, 3600, Number.POSITIVE_INFINITY), 'disabled user')
})

t.test('CSRF tokens are bound to the browser secret and the key', async (t) => {
  const key = deriveKey('k'.repeat(32), 'csrf-v1')
  const secret = newCsrfSecret()
  const token = csrfTokenFor(key, secret)
  t.ok(isCsrfTokenValid(key, secret, token))
  t.notOk(isCsrfTokenValid(key, newCsrfSecret(), token), 'other browser')
  t.notOk(isCsrfTokenValid(deriveKey('o'.repeat(32), 'csrf-v1'), secret, token), 'other key')
  t.notOk(isCsrfTokenValid(key, undefined, token), 'no cookie')
  t.notOk(isCsrfTokenValid(key, secret, undefined), 'no token')
  t.notOk(isCsrfTokenValid(key, secret, token.slice(1)), 'truncated')
  t.notOk(isCsrfTokenValid(key, 'short', csrfTokenFor(key, 'short')), 'malformed secret')
  t.not(deriveKey('k'.repeat(32), 'a').toString('hex'), deriveKey('k'.repeat(32), 'b').toString('hex'), 'one key per purpose')
})

t.test('cookie names', async (t) => {
  t.same(cookieNames(true), { session: '__Host-authgate', csrf: '__Host-authgate_csrf', oidcPrefix: '__Host-authgate_oidc_', device: '__Host-authgate_device' })
  t.same(cookieNames(false), { session: 'authgate', csrf: 'authgate_csrf', oidcPrefix: 'authgate_oidc_', device: 'authgate_device' })
  for (const n of ['authgate', '__Host-authgate', 'authgate_csrf', '__Host-authgate_oidc_ab', 'authgate_device', '__Host-authgate_device']) t.ok(isGatewayCookie(n), n)
  for (const n of ['authgatex', 'session', '__Host-other', 'x_authgate']) t.notOk(isGatewayCookie(n), n)
})
