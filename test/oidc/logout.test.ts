// Logout of OIDC sessions: through the real provider's end-session endpoint, or to /login when it
// has none; and local sessions never leave for the IdP.
import t from 'tap'
import { CookieJar, fetchWithJar, followEndSession } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, POST_LOGOUT_URI, REDIRECT_URI, identityAtUpstream, ssoLogin, startSsoGateway } from '../support/sso.js'
import { loginLocal, cookieHeader } from '../support/http.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

t.test('RP-initiated logout through the end_session_endpoint', async (t) => {
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT_URI] }],
    accounts: { alice: { preferred_username: 'alice', email: 'alice@example.test', email_verified: true, groups: [] } },
    password: 'pw'
  })
  t.teardown(() => op.close())
  const gw = await startSsoGateway(op.issuer, { AUTH_METHOD: 'both', OIDC_POST_LOGOUT_REDIRECT_URI: POST_LOGOUT_URI }, upstream.url)
  t.teardown(() => gw.close())

  const jar = new CookieJar()
  t.equal((await ssoLogin(gw, jar, { login: 'alice', password: 'pw' })).status, 302)
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'alice')

  const logout = await fetchWithJar(jar, `${gw.url}/logout`, { method: 'POST', headers: { 'sec-fetch-site': 'same-origin' } })
  t.equal(logout.status, 303)
  const target = new URL(logout.headers.get('location')!)
  t.equal(target.origin + target.pathname, `${op.issuer}/session/end`)
  t.ok(target.searchParams.get('id_token_hint'), 'id_token_hint sent')
  t.equal(target.searchParams.get('post_logout_redirect_uri'), POST_LOGOUT_URI)
  const state = target.searchParams.get('state')
  t.match(state, /^[\w-]{20,}$/)
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'gateway session gone')

  const final = new URL(await followEndSession(target, jar))
  t.equal(final.origin + final.pathname, POST_LOGOUT_URI, 'back at the post-logout URI')
  t.equal(final.searchParams.get('state'), state)

  await t.test('the IdP session is gone too: the next SSO shows its login form', async (t) => {
    const start = await fetchWithJar(jar, `${gw.url}/login/oidc`)
    const authorize = await fetchWithJar(jar, start.headers.get('location')!)
    t.match(authorize.headers.get('location'), /\/interaction\//)
  })

  await t.test('a local session logs out to /login, never to the IdP', async (t) => {
    const { cookies } = await loginLocal(gw.url, 'localuser')
    const response = await fetch(`${gw.url}/logout`, { redirect: 'manual', headers: { cookie: cookieHeader(cookies) } })
    t.equal(response.status, 303)
    t.equal(response.headers.get('location'), '/login?signed_out=1')
  })
})

t.test('a provider without end_session_endpoint (and with claims at userinfo only)', async (t) => {
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: { 'u-42': { preferred_username: 'bob', name: 'Bob', email: 'bob@example.test', email_verified: true, groups: ['staff'] } },
    endSession: false,
    idTokenClaims: false
  })
  t.teardown(() => op.close())
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())

  const jar = new CookieJar()
  t.equal((await ssoLogin(gw, jar, { login: 'bob', password: 'x' })).status, 302)
  t.same(await identityAtUpstream(gw, jar, upstream), { user: 'bob', admin: 'false', groups: 'staff', email: 'bob@example.test', fullName: 'Bob' }, 'claims from userinfo')
  const logout = await fetchWithJar(jar, `${gw.url}/logout`)
  t.equal(logout.status, 303)
  t.equal(logout.headers.get('location'), '/login?signed_out=1')
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined)
})
