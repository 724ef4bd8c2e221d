// SSO against a real OpenID Provider (node-oidc-provider): the modes, the whole flow with a cookie
// jar, `next`, parallel flows, self-registration, and what the upstream then receives.
import t from 'tap'
import { CookieJar, fetchWithJar, parseForms } from '../support/browserless.js'
import { startOidcProvider, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, deliverToGateway, identityAtUpstream, ssoLogin, startSso, startSsoGateway } from '../support/sso.js'
import { signInThroughProvider } from '../support/browserless.js'
import { http } from '../support/http.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

const op: OidcProviderFixture = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: {
    alice: { preferred_username: 'alice', name: 'Alice Ämmälä', email: 'alice@example.test', email_verified: true, groups: ['staff', 'tt-admins'] },
    bob: { sub: 'bob-sub', preferred_username: 'bob', name: 'Bob', email: 'bob@example.test', email_verified: true, groups: ['staff'] }
  },
  password: 'pw'
})
t.teardown(() => op.close())

t.test('AUTH_METHOD=oidc: /login goes to SSO keeping next, the local form is neither shown nor accepted', async (t) => {
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())
  const login = await http(`${gw.url}/login?next=${encodeURIComponent('/reports?week=3')}`)
  t.equal(login.status, 302)
  t.equal(login.headers.location, '/login/oidc?next=' + encodeURIComponent('/reports?week=3'))
  const post = await http(`${gw.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&next=/' })
  t.equal(post.status, 403)
  t.match(post.body, /use single sign-on/)
  t.notMatch(post.body, /name="username"/)
})

t.test('full sign-in: next preserved, user created, upstream gets the identity, cookies clean', async (t) => {
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const { authorizeUrl } = await startSso(gw, jar, '/reports?week=3')
  t.ok(authorizeUrl)
  const authorize = new URL(authorizeUrl!)
  t.equal(authorize.origin, op.issuer)
  t.equal(authorize.searchParams.get('code_challenge_method'), 'S256')
  t.equal(authorize.searchParams.get('redirect_uri'), REDIRECT_URI)
  t.equal(authorize.searchParams.get('scope'), 'openid profile email groups')
  t.match(authorize.searchParams.get('state'), /^[\w-]{32}$/)
  t.ok(authorize.searchParams.get('nonce'))
  const txCookie = jar.all().find((c) => c.name.startsWith('authgate_oidc_'))
  t.ok(txCookie, 'transaction cookie set')
  t.equal(txCookie?.sameSite?.toLowerCase(), 'lax')
  t.ok(txCookie?.httpOnly)

  const back = await signInThroughProvider(authorizeUrl!, jar, { login: 'alice', password: 'pw' })
  const callback = await fetchWithJar(jar, deliverToGateway(gw, back))
  t.equal(callback.status, 302)
  t.equal(callback.headers.get('location'), '/reports?week=3')
  t.notOk(jar.all().some((c) => c.name.startsWith('authgate_oidc_')), 'transaction cookie cleared at the callback')
  const session = callback.headers.getSetCookie().find((c) => c.startsWith('authgate='))
  t.ok(session, 'session cookie set')
  t.ok(session!.length < 4096, `session cookie is ${session!.length} bytes`)

  t.same(await identityAtUpstream(gw, jar, upstream), { user: 'alice', admin: 'false', groups: 'staff,tt-admins', email: 'alice@example.test', fullName: 'Alice Ämmälä' })
  t.notOk(String(upstream.received.at(-1)!.headers.cookie ?? '').includes('authgate'), 'gateway cookies are not forwarded')

  const user = await gw.users.findByUsername('alice')
  t.equal(user?.oidcIssuer, op.issuer)
  t.equal(user?.oidcSub, 'alice')
  t.equal(user?.email, 'alice@example.test')
  t.equal(user?.fullName, 'Alice Ämmälä')
  t.ok(user?.lastLoginAt)

  await t.test('the same callback cannot be used twice', async (t) => {
    const again = await fetchWithJar(new CookieJar(), deliverToGateway(gw, back))
    t.equal(again.status, 400)
    t.match(await again.text(), /Sign-in expired[\s\S]*transaction-missing/)
  })
})

t.test('AUTH_METHOD=both: SSO button and local form; SSO works', async (t) => {
  const gw = await startSsoGateway(op.issuer, { AUTH_METHOD: 'both', OIDC_BUTTON_TEXT: 'Sign in with Example SSO' }, upstream.url)
  t.teardown(() => gw.close())
  const page = await http(`${gw.url}/login?next=/x`)
  t.equal(page.status, 200)
  t.match(page.body, /href="\/login\/oidc\?next=%2Fx"[^>]*>Sign in with Example SSO</)
  t.ok(parseForms(page.body, gw.url + '/login').some((f) => f.fieldNames.includes('username')), 'local form shown')
  const jar = new CookieJar()
  const response = await ssoLogin(gw, jar, { login: 'bob', password: 'pw' }, '/x')
  t.equal(response.status, 302)
  t.equal(response.headers.get('location'), '/x')
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'bob')
  t.equal((await gw.users.findByUsername('bob'))?.oidcSub, 'bob-sub')
})

t.test('two flows in parallel in one browser each land on their own next', async (t) => {
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const a = await startSso(gw, jar, '/tab-a')
  const b = await startSso(gw, jar, '/tab-b')
  t.equal(jar.all().filter((c) => c.name.startsWith('authgate_oidc_')).length, 2)
  const backB = await signInThroughProvider(b.authorizeUrl!, jar, { login: 'alice', password: 'pw' })
  const backA = await signInThroughProvider(a.authorizeUrl!, jar, { login: 'alice', password: 'pw' })
  const doneB = await fetchWithJar(jar, deliverToGateway(gw, backB))
  t.equal(doneB.headers.get('location'), '/tab-b')
  const doneA = await fetchWithJar(jar, deliverToGateway(gw, backA))
  t.equal(doneA.headers.get('location'), '/tab-a')
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'alice')

  await t.test('the number of pending flows is capped; the oldest give way', async (t) => {
    const tabs = new CookieJar()
    for (let i = 0; i < 8; i++) await startSso(gw, tabs, `/tab-${i}`)
    t.equal(tabs.all().filter((c) => c.name.startsWith('authgate_oidc_')).length, 5)
  })
})

t.test('ALLOW_SELF_REGISTER=false refuses unknown users with a clear page and no session', async (t) => {
  const gw = await startSsoGateway(op.issuer, { ALLOW_SELF_REGISTER: 'false' }, upstream.url)
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const response = await ssoLogin(gw, jar, { login: 'alice', password: 'pw' }, '/x')
  t.equal(response.status, 403)
  const body = await response.text()
  t.match(body, /Not registered/)
  t.match(body, /not-registered/)
  t.match(body, /href="\/login\?next=%2Fx"/, 'try again link')
  t.equal(await gw.users.findByUsername('alice'), undefined)
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')

  await t.test('a registered user still gets in', async (t) => {
    await gw.users.create({ username: 'bob' })
    const ok = await ssoLogin(gw, new CookieJar(), { login: 'bob', password: 'pw' })
    t.equal(ok.status, 302)
    t.equal((await gw.users.findByUsername('bob'))?.oidcSub, 'bob-sub', 'linked at first SSO sign-in')
  })
})

t.test('AUTH_METHOD=local: SSO routes say it is not enabled', async (t) => {
  const { startGateway } = await import('../support/gateway.js')
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(() => gw.close())
  for (const path of ['/login/oidc', '/auth/oidc/callback?state=x&code=y']) {
    const response = await http(gw.url + path)
    t.equal(response.status, 404, path)
    t.match(response.body, /Single sign-on is not enabled/)
  }
})
