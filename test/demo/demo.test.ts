// `npm run demo` without a browser: it refuses production, its gateway runs with AUTH_METHOD=both,
// and its OpenID Provider signs the demo accounts in (checked with openid-client, as the gateway does).
import t from 'tap'
import * as oidc from 'openid-client'
import { CookieJar, fetchWithJar, followEndSession, signInThroughProvider } from '../support/browserless.js'
import { http, loginLocal } from '../support/http.js'
import { DEMO_REFRESH_INTERVAL, startDemo } from '../../scripts/demo/run.js'
import { ADMIN_GROUP, DEMO_ACCOUNTS } from '../../scripts/demo/idp.js'

t.test('refuses to run with NODE_ENV=production', async (t) => {
  const before = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  t.teardown(() => { if (before === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = before })
  await t.rejects(startDemo({ port: 0 }), { name: 'DemoRefused', message: /development only/ })
})

t.test('the demo: gateway, demo accounts, provider', async (t) => {
  const demo = await startDemo({ port: 0, logLevel: 'silent' })
  t.teardown(demo.close)
  t.match(demo.url, /^http:\/\/localhost:\d+\/$/)
  t.match(demo.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(demo.config.authMethod, 'both')
  t.equal(demo.config.production, false)
  t.equal(demo.config.oidc!.refreshInterval, DEMO_REFRESH_INTERVAL, 'sessions re-validated every 30 s')
  t.ok(DEMO_ACCOUNTS.some((a) => a.groups.includes(ADMIN_GROUP)), 'one account is in the admin group')
  t.ok(DEMO_ACCOUNTS.some((a) => !a.groups.includes(ADMIN_GROUP)), 'and others are not')

  t.test('the login page offers SSO and the local form', async (t) => {
    const page = await http(`${demo.url}login`, { headers: { accept: 'text/html' } })
    t.equal(page.status, 200)
    t.match(page.body, 'id="sso" href="/login/oidc?next=%2F">Sign in with SSO</a>')
    t.match(page.body, 'id="password"')
  })

  t.test('the local demo account signs in', async (t) => {
    const base = demo.url.slice(0, -1)
    const { response } = await loginLocal(base, demo.localAccount.username, { password: demo.localAccount.password, next: '/hello' })
    t.equal(response.status, 303)
    t.equal(response.headers.location, '/hello')
  })

  t.test('the provider signs demo accounts in through its own form, with their groups', async (t) => {
    const settings = demo.config.oidc!
    const config = await oidc.discovery(new URL(demo.issuer), settings.clientId, settings.clientSecret, undefined, { execute: [oidc.allowInsecureRequests] })
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const authorize = oidc.buildAuthorizationUrl(config, {
      redirect_uri: settings.redirectUri.href,
      scope: settings.scopes,
      state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256'
    })
    const alice = DEMO_ACCOUNTS.find((a) => a.groups.includes(ADMIN_GROUP))!
    const callback = await signInThroughProvider(authorize, new CookieJar(), { login: alice.username, password: alice.password })
    t.ok(callback.startsWith(settings.redirectUri.href + '?'), 'back to the gateway\'s callback')
    const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state })
    const claims = tokens.claims()!
    t.equal(claims.sub, alice.username)
    t.equal(claims['preferred_username'], alice.username)
    t.equal(claims['name'], alice.name)
    t.equal(claims['email'], alice.email)
    t.same(claims['groups'], alice.groups)

    await t.rejects(signInThroughProvider(authorize, new CookieJar(), { login: alice.username, password: 'wrong' }), /login form again/, 'a wrong password is refused')
  })

  t.test('signing out at the provider ends the gateway session (back-channel logout)', async (t) => {
    const base = demo.url.slice(0, -1)
    const jar = new CookieJar()
    const start = await fetchWithJar(jar, `${base}/login/oidc`)
    const bob = DEMO_ACCOUNTS.find((a) => !a.groups.includes(ADMIN_GROUP))!
    const back = await signInThroughProvider(start.headers.get('location')!, jar, { login: bob.username, password: bob.password })
    t.equal((await fetchWithJar(jar, back)).status, 302, 'signed in through SSO')
    const whoami = async (): Promise<number> => (await fetchWithJar(jar, `${base}/whoami`, { headers: { accept: 'application/json' } })).status
    t.equal(await whoami(), 200)
    // At the provider itself, not through the gateway's sign-out.
    await followEndSession(`${demo.issuer}/session/end?client_id=${demo.config.oidc!.clientId}`, jar)
    t.equal(await whoami(), 401, 'the gateway session ended')
  })
})

t.test('a group changed at the provider\'s /accounts page reaches the demo upstream without a new sign-in', async (t) => {
  const demo = await startDemo({ port: 0, logLevel: 'silent', refreshInterval: 1 })
  t.teardown(demo.close)
  const base = demo.url.slice(0, -1)
  const jar = new CookieJar()
  const start = await fetchWithJar(jar, `${base}/login/oidc`)
  const alice = DEMO_ACCOUNTS.find((a) => a.groups.includes(ADMIN_GROUP))!
  const back = await signInThroughProvider(start.headers.get('location')!, jar, { login: alice.username, password: alice.password })
  t.equal((await fetchWithJar(jar, back)).status, 302, 'signed in through SSO')
  const page = async (): Promise<string> => await (await fetchWithJar(jar, `${base}/`, { headers: { accept: 'text/html' } })).text()
  t.match(await page(), /<code>x-admin<\/code><\/th><td><code>true<\/code>/, 'the upstream sees an administrator')

  const accounts = await http(`${demo.issuer}/accounts`)
  t.equal(accounts.status, 200)
  const token = /name="token" value="([\w-]+)"/.exec(accounts.body)?.[1]
  t.ok(token, 'the accounts page has its form token')
  const post = async (body: Record<string, string>, origin = demo.issuer): Promise<number> =>
    (await fetch(`${demo.issuer}/accounts`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: new URLSearchParams(body) })).status
  t.equal(await post({ username: alice.username, groups: 'staff', token: 'wrong' }), 400, 'a wrong form token is refused')
  t.equal(await post({ username: alice.username, groups: 'staff', token: token! }, 'http://evil.test'), 400, 'a post from another site is refused')
  t.equal(await post({ username: alice.username, groups: 'staff', token: token! }), 303, 'alice taken out of admins')

  // The session re-validates (refresh token) within the interval; polled as a user reloading the page.
  const deadline = Date.now() + 10_000
  let now = ''
  while (Date.now() < deadline) {
    now = await page()
    if (now.includes('<code>x-admin</code></th><td><code>false</code>')) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(now, /<code>x-admin<\/code><\/th><td><code>false<\/code>/, 'the upstream sees X-Admin: false')
  t.match(now, /<code>x-groups<\/code><\/th><td><code>staff<\/code>/, 'and X-Groups: staff')
})
