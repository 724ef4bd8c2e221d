// The gateway against a provider that misbehaves one way per test: each misbehaviour must end on a
// deliberate 4xx page, with no session and no further call to the IdP after the failed check.
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { loggerOptions } from '../../src/logger.js'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startHostileIdp, DEFAULT_HOSTILE_CLAIMS, HUGE_RESPONSE_BYTES, type Misbehaviour } from '../support/hostile-idp.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, hostileLogin, identityAtUpstream, startSsoGateway } from '../support/sso.js'
import type { TestGateway } from '../support/gateway.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())
const idp = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET })
t.teardown(() => idp.close())
const gw = await startSsoGateway(idp.issuer, {}, upstream.url)
t.teardown(() => gw.close())

/** IdP paths called since `from`, JWKS fetches left out (whether one happens depends on the cache). */
const callsSince = (from: number): string[] => idp.calls.slice(from).map((c) => c.path).filter((p) => p !== '/jwks')

async function expectRefused (t: Test, gateway: TestGateway, jar: CookieJar, expected: { status: number, code: string, calls: string[] }): Promise<void> {
  const before = idp.calls.length
  const { callback, response } = await hostileLogin(gateway, jar, '/after')
  void callback
  const body = await response.text()
  t.equal(response.status, expected.status, 'status')
  t.match(body, new RegExp(`Error code: ${expected.code}`), 'page names the error code')
  // Without its transaction the gateway cannot know `next`: the link then starts from "/".
  const next = expected.code === 'transaction-missing' ? '%2F' : '%2Fafter'
  t.match(body, new RegExp(`href="/login(/oidc)?\\?next=${next}">Try again<`), 'try-again link')
  t.notMatch(body, /at .*\.(ts|js):\d+/, 'no stack trace')
  t.notOk(response.headers.getSetCookie().some((c) => /^authgate=[^;]/.test(c)), 'no session cookie set')
  t.same(callsSince(before).filter((p) => p !== '/authorize'), expected.calls, 'nothing reached the IdP after the failed check')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(callsSince(before).filter((p) => p !== '/authorize'), expected.calls, 'and nothing later either')
  t.equal(await identityAtUpstream(gateway, jar, upstream), undefined, 'no session')
}

t.test('a well-behaved provider signs in (baseline for the cases below)', async (t) => {
  idp.setMisbehave('none')
  const jar = new CookieJar()
  const before = idp.calls.length
  const { response } = await hostileLogin(gw, jar, '/after')
  t.equal(response.status, 302)
  t.equal(response.headers.get('location'), '/after')
  t.same(callsSince(before), ['/authorize', '/token', '/userinfo'])
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'mallory')
  t.equal(idp.tokenRequests.at(-1)?.authMethod, 'client_secret_post')
})

const cases: Array<[Misbehaviour, { status: number, code: string, calls: string[] }]> = [
  ['bad-signature', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['alg-none', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['wrong-iss', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['wrong-aud', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['expired', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['missing-iat', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  ['wrong-nonce', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  // The returned state names no flow of this browser: refused before anything is sent.
  ['wrong-state', { status: 400, code: 'transaction-missing', calls: [] }],
  ['missing-iss-param', { status: 400, code: 'verification-failed', calls: [] }],
  ['wrong-iss-param', { status: 400, code: 'verification-failed', calls: [] }],
  ['userinfo-sub-mismatch', { status: 400, code: 'verification-failed', calls: ['/token', '/userinfo'] }],
  ['hs512-id-token', { status: 400, code: 'verification-failed', calls: ['/token'] }],
  // 401 with a WWW-Authenticate challenge (as LemonLDAP::NG answers a wrong client secret): the provider refused.
  ['token-401-challenge', { status: 400, code: 'provider-error', calls: ['/token'] }],
  ['userinfo-401-challenge', { status: 400, code: 'provider-error', calls: ['/token', '/userinfo'] }],
  ['userinfo-401-bare-challenge', { status: 400, code: 'provider-error', calls: ['/token', '/userinfo'] }]
]
for (const [misbehaviour, expected] of cases) {
  t.test(`${misbehaviour}: refused`, async (t) => {
    idp.setMisbehave(misbehaviour)
    t.teardown(() => { idp.setMisbehave('none') })
    await expectRefused(t, gw, new CookieJar(), expected)
  })
}

t.test('unknown kid on a first login: the JWKS is fetched again and the sign-in succeeds', async (t) => {
  // A gateway that has never fetched the JWKS: its first copy lacks the new key, and is fresh.
  const fresh = await startSsoGateway(idp.issuer, {}, upstream.url)
  t.teardown(() => fresh.close())
  idp.setMisbehave('unknown-kid-then-rotate')
  t.teardown(() => { idp.setMisbehave('none') })
  const jar = new CookieJar()
  const before = idp.calls.length
  const { response } = await hostileLogin(fresh, jar, '/after')
  t.equal(response.status, 302, await response.text())
  const calls = idp.calls.slice(before).map((c) => c.path)
  t.same(calls, ['/authorize', '/token', '/jwks', '/jwks', '/userinfo'], 'one token request; the JWKS fetched twice')
  t.equal((await identityAtUpstream(fresh, jar, upstream))?.user, 'mallory')
})

t.test('errors in the authorization response', async (t) => {
  idp.setAuthorizeResponse({ error: 'access_denied', error_description: 'user said no' })
  t.teardown(() => { idp.setAuthorizeResponse({}) })
  await expectRefused(t, gw, new CookieJar(), { status: 403, code: 'access-denied', calls: [] })
  idp.setAuthorizeResponse({ error: 'temporarily_unavailable' })
  await expectRefused(t, gw, new CookieJar(), { status: 400, code: 'provider-error', calls: [] })
  idp.setAuthorizeResponse({ code: 'not-a-code-the-idp-issued' })
  await expectRefused(t, gw, new CookieJar(), { status: 400, code: 'provider-error', calls: ['/token'] })
})

t.test('broken callbacks get a deliberate 400 page', async (t) => {
  const paths = [
    '/auth/oidc/callback',
    '/auth/oidc/callback?code=x',
    '/auth/oidc/callback?state=short&code=x',
    '/auth/oidc/callback?state=' + 'a'.repeat(5000),
    '/auth/oidc/callback?state=' + 'a'.repeat(32) + '&code=x',
    '/auth/oidc/callback?state=%ff%fe&code=%00'
  ]
  for (const path of paths) {
    const before = idp.calls.length
    const response = await fetch(gw.url + path, { headers: { accept: 'text/html' } })
    t.equal(response.status, 400, path.slice(0, 80))
    t.match(await response.text(), /Error code: transaction-missing/)
    t.equal(idp.calls.length, before, 'no IdP call')
  }

  for (const path of ['/login/oidc', '/auth/oidc/callback']) {
    const response = await fetch(gw.url + path, { method: 'POST', body: 'code=x&state=y', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    t.equal(response.status, 405, `POST ${path}`)
    await response.text()
  }

  await t.test('a tampered or foreign transaction cookie is refused', async (t) => {
    const jar = new CookieJar()
    const start = await fetchWithJar(jar, `${gw.url}/login/oidc?next=/x`)
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!
    const cookie = jar.all().find((c) => c.name === 'authgate_oidc_' + state)!
    const other = 'b'.repeat(32)
    // The same sealed value under another state's name does not open (the state is bound to it).
    const moved = await fetch(`${gw.url}/auth/oidc/callback?state=${other}&code=x`, { headers: { cookie: `authgate_oidc_${other}=${cookie.value}` } })
    t.equal(moved.status, 400)
    const i = 20 // inside the IV/ciphertext, never the padding bits of the last character
    const flipped = cookie.value.slice(0, i) + (cookie.value[i] === 'A' ? 'B' : 'A') + cookie.value.slice(i + 1)
    t.not(flipped, cookie.value)
    const tampered = await fetch(`${gw.url}/auth/oidc/callback?state=${state}&code=x`, { headers: { cookie: `authgate_oidc_${state}=${flipped}` } })
    t.equal(tampered.status, 400)
    t.match(await tampered.text(), /transaction-missing/)
  })
})

t.test('claim mapping: missing username claim names the claim and what was sent', async (t) => {
  idp.setClaims({ sub: 'u-9', email: 'x@example.test', name: 'X' })
  t.teardown(() => { idp.setClaims(DEFAULT_HOSTILE_CLAIMS) })
  const { response } = await hostileLogin(gw, new CookieJar(), '/after')
  t.equal(response.status, 400)
  const body = await response.text()
  t.match(body, /&quot;preferred_username&quot; \(OIDC_USERNAME_CLAIM\)/)
  t.match(body, /It sent: [a-z_, ]*email[a-z_, ]*name/)
  t.notMatch(body, /x@example\.test/, 'claim values are not shown')
})

t.test('claim mapping: dotted paths and groups as a string; admin by group; client_secret_basic', async (t) => {
  const mapped = await startSsoGateway(idp.issuer, {
    OIDC_USERNAME_CLAIM: 'profile.login',
    OIDC_GROUPS_CLAIM: 'realm_access.roles',
    OIDC_ADMIN_GROUP: 'tt-admin',
    OIDC_CLIENT_AUTH_METHOD: 'client_secret_basic'
  }, upstream.url)
  t.teardown(() => mapped.close())
  idp.setClaims({ sub: 'kc-1', profile: { login: 'Kim' }, name: 'Kim K', email: 'kim@example.test', email_verified: true, realm_access: { roles: 'staff, tt-admin offline_access' } })
  t.teardown(() => { idp.setClaims(DEFAULT_HOSTILE_CLAIMS) })
  const jar = new CookieJar()
  const { response } = await hostileLogin(mapped, jar)
  t.equal(response.status, 302)
  t.equal(idp.tokenRequests.at(-1)?.authMethod, 'client_secret_basic')
  t.same(await identityAtUpstream(mapped, jar, upstream), { user: 'kim', admin: 'true', groups: 'staff,tt-admin,offline_access', email: 'kim@example.test', fullName: 'Kim K' })
})

t.test('a wrong client secret with client_secret_basic: provider-error, and the log has the status and the challenge', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), { write: (line: string) => { lines.push(line) } })
  const wrong = await startSsoGateway(idp.issuer, { OIDC_CLIENT_AUTH_METHOD: 'client_secret_basic', OIDC_CLIENT_SECRET: 'not-the-secret' }, upstream.url, { logger })
  t.teardown(() => wrong.close())
  const jar = new CookieJar()
  const { response } = await hostileLogin(wrong, jar, '/after')
  t.equal(response.status, 400)
  t.match(await response.text(), /Error code: provider-error/)
  t.equal(idp.tokenRequests.at(-1)?.authMethod, 'client_secret_basic')
  t.equal(idp.tokenRequests.at(-1)?.error, 'invalid_client')
  t.equal(await identityAtUpstream(wrong, jar, upstream), undefined, 'no session')
  const log = lines.join('')
  t.match(log, /"code":"provider-error","reason":"token endpoint answered HTTP 401, WWW-Authenticate: basic; body: invalid_client \(client authentication failed\)"/, 'the status and the challenge')
  t.notMatch(log, /not-the-secret/, 'the secret is not logged')
})

t.test('the log names what the provider said: challenges, and the algorithm of an HS-signed ID token', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), { write: (line: string) => { lines.push(line) } })
  const logged = await startSsoGateway(idp.issuer, {}, upstream.url, { logger })
  t.teardown(() => logged.close())
  t.teardown(() => { idp.setMisbehave('none') })
  const reasonFor = async (m: Misbehaviour): Promise<string> => {
    idp.setMisbehave(m)
    const from = lines.length
    await hostileLogin(logged, new CookieJar())
    const failure = lines.slice(from).map((l) => JSON.parse(l) as { msg?: string, reason?: string }).find((l) => l.msg === 'OIDC sign-in failed')
    return failure?.reason ?? ''
  }
  t.match(await reasonFor('token-401-challenge'),
    /^token endpoint answered HTTP 401, WWW-Authenticate: basic error=invalid_client error_description=client authentication failed; body: invalid_client \(client authentication failed\)$/)
  t.match(await reasonFor('userinfo-401-challenge'),
    /^userinfo endpoint answered HTTP 401, WWW-Authenticate: bearer error=invalid_token error_description=the access token is not valid; body: invalid_token$/)
  t.equal(await reasonFor('userinfo-401-bare-challenge'),
    'userinfo endpoint answered HTTP 401, WWW-Authenticate: (unparsable) error=invalid_request error_description=Invalid request')
  t.equal(await reasonFor('hs512-id-token'),
    'ID token signed with HS512; this gateway accepts only asymmetric algorithms (RS256, ES256, …): set the client\'s ID token algorithm to RS256 at the IdP')
  t.notMatch(lines.join(''), /eyJ[\w-]+\.eyJ/, 'no token in the log')
})

t.test('groups are never cut to fit: an identity too large for the session is refused', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), { write: (line: string) => { lines.push(line) } })
  const logged = await startSsoGateway(idp.issuer, {}, upstream.url, { logger })
  t.teardown(() => logged.close())
  t.teardown(() => { idp.setClaims(DEFAULT_HOSTILE_CLAIMS) })
  // "suspended" last: cutting the list from the end is exactly what would widen access.
  const cases = [
    { name: '2,000 groups', sub: 'many-groups', groups: [...Array.from({ length: 1999 }, (_, i) => `g${i}`), 'suspended'], logged: /2000 groups/ },
    { name: '120 long groups (under the count limit, over the cookie)', sub: 'long-groups', groups: [...Array.from({ length: 119 }, (_, i) => `group-with-a-rather-long-name-number-${i}`), 'suspended'], logged: /120 groups/ },
    { name: 'one group name over 256 characters', sub: 'long-group', groups: ['staff', 'suspended-' + 'x'.repeat(300)], logged: /longer than 256/ }
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      idp.setClaims({ ...DEFAULT_HOSTILE_CLAIMS, sub: c.sub, preferred_username: c.sub, groups: c.groups })
      const jar = new CookieJar()
      const { response } = await hostileLogin(logged, jar, '/after')
      const body = await response.text()
      t.equal(response.status, 400)
      t.match(body, /Error code: groups-too-large/)
      t.match(body, /fewer groups/, 'the page says what the operator can do')
      t.match(body, /OIDC_GROUPS_CLAIM/)
      t.notOk(response.headers.getSetCookie().some((cookie) => /^authgate=[^;]/.test(cookie)), 'no session cookie')
      t.equal(await identityAtUpstream(logged, jar, upstream), undefined, 'no session')
      t.equal(await logged.users.findByUsername(c.sub), undefined, 'no user row created')
      t.match(lines.join(''), c.logged, 'the log has the counts')
    })
  }
})

t.test('an ID token too large for the cookie is not kept, the groups are, and logout sends client_id', async (t) => {
  const groups = Array.from({ length: 40 }, (_, i) => `group-${i}`)
  // Every end-user claim goes into the ID token: this one makes it larger than the cookie.
  idp.setClaims({ ...DEFAULT_HOSTILE_CLAIMS, groups, padding: 'p'.repeat(4000) })
  t.teardown(() => { idp.setClaims(DEFAULT_HOSTILE_CLAIMS) })
  const jar = new CookieJar()
  const { response } = await hostileLogin(gw, jar)
  t.equal(response.status, 302)
  const session = response.headers.getSetCookie().find((c) => c.startsWith('authgate='))!
  t.ok(session.length < 4096, `Set-Cookie is ${session.length} bytes`)
  const seen = await identityAtUpstream(gw, jar, upstream)
  t.equal(seen?.user, 'mallory', 'the session works')
  t.same(seen?.groups.split(','), groups, 'every group, in order')

  const logout = await fetchWithJar(jar, `${gw.url}/logout`)
  t.equal(logout.status, 303)
  const target = new URL(logout.headers.get('location')!)
  t.equal(target.origin + target.pathname, `${idp.issuer}/logout`)
  t.equal(target.searchParams.get('client_id'), CLIENT_ID)
  t.equal(target.searchParams.get('id_token_hint'), null)
  t.ok(target.searchParams.get('state'))
})

t.test('a chunked answer without Content-Length is cut at 1 MiB: the provider-error page, no session', async (t) => {
  for (const misbehaviour of ['chunked-huge-jwks', 'chunked-huge-token', 'chunked-huge-userinfo'] as const) {
    await t.test(misbehaviour, async (t) => {
      // A gateway that has not fetched the JWKS yet, so that the callback fetches it.
      const fresh = await startSsoGateway(idp.issuer, {}, upstream.url)
      t.teardown(() => fresh.close())
      idp.setMisbehave(misbehaviour)
      t.teardown(() => { idp.setMisbehave('none') })
      const settled = idp.hugeResponses.length
      const jar = new CookieJar()
      const { response } = await hostileLogin(fresh, jar, '/after')
      const body = await response.text()
      t.equal(response.status, 400)
      t.match(body, /Error code: provider-error/)
      t.equal(await identityAtUpstream(fresh, jar, upstream), undefined, 'no session')
      for (let i = 0; i < 200 && idp.hugeResponses.length === settled; i++) await new Promise((resolve) => setTimeout(resolve, 25))
      const sent = idp.hugeResponses.slice(settled)
      t.equal(sent.length, 1, 'one oversized response was sent')
      t.equal(sent[0]?.completed, false, `the gateway stopped reading (${sent[0]?.bytesWritten} of ${HUGE_RESPONSE_BYTES} bytes written)`)

      idp.setMisbehave('none')
      const again = await hostileLogin(fresh, new CookieJar())
      t.equal(again.response.status, 302, 'the gateway is fine afterwards')
    })
  }
})

t.test('a provider that does not support the RFC 9207 iss parameter', async (t) => {
  const plain = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, issParameterSupported: false, endSession: false })
  t.teardown(() => plain.close())
  const gateway = await startSsoGateway(plain.issuer, { OIDC_POST_LOGOUT_REDIRECT_URI: 'http://localhost:8080/login' }, upstream.url)
  t.teardown(() => gateway.close())
  const jar = new CookieJar()
  const { callback, response } = await hostileLogin(gateway, jar)
  t.equal(new URL(callback).searchParams.get('iss'), null)
  t.equal(response.status, 302)

  await t.test('and has no end_session_endpoint: logout ends on /login', async (t) => {
    const logout = await fetchWithJar(jar, `${gateway.url}/logout`)
    t.equal(logout.status, 303)
    t.equal(logout.headers.get('location'), '/login?signed_out=1')
    t.equal(await identityAtUpstream(gateway, jar, upstream), undefined)
  })
})

t.test('the log has the reasons, and never a token, a code or a stack trace', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('debug'), { write: (line: string) => { lines.push(line) } })
  const logged = await startSsoGateway(idp.issuer, {}, upstream.url, { logger })
  t.teardown(() => logged.close())
  const codesSent: string[] = []
  for (const m of ['none', 'bad-signature', 'wrong-nonce', 'userinfo-sub-mismatch', 'wrong-iss-param'] as const) {
    idp.setMisbehave(m)
    await hostileLogin(logged, new CookieJar())
    const code = idp.tokenRequests.at(-1)?.params['code']
    if (code !== undefined) codesSent.push(code)
  }
  idp.setMisbehave('none')
  const log = lines.join('')
  t.match(log, /"code":"verification-failed","reason":"[^"]*signature verification failed/)
  t.match(log, /"reason":"[^\n]*\\"nonce\\" claim/)
  t.match(log, /"reason":"[^\n]*\\"sub\\" property/)
  t.match(log, /"reason":"[^\n]*\\"iss\\" \(issuer\) response parameter/)
  t.match(log, /"audit":"sign-in","user":"mallory","method":"oidc"/, 'the sign-in, as an audit event')
  t.notMatch(log, /eyJ[\w-]+\.eyJ/, 'no JWT (ID token) in the log')
  t.ok(codesSent.length > 0)
  for (const code of codesSent) t.notOk(log.includes(code), 'authorization code not logged')
  t.notMatch(log, /"stack"/, 'no stack traces for expected failures')
  t.notMatch(log, /state=|code=/, 'no callback query strings')
})
