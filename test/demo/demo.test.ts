// `npm run demo` without a browser: it refuses production, its gateway runs with AUTH_METHOD=both
// and two providers (OIDC_PROVIDERS), and each OpenID Provider signs its own demo accounts in
// (checked with openid-client, as the gateway does, and through the gateway).
import t from 'tap'
import * as oidc from 'openid-client'
import { CookieJar, fetchWithJar, followEndSession, signInThroughProvider } from '../support/browserless.js'
import { http, loginLocal } from '../support/http.js'
import { DEMO_PROVIDERS, DEMO_REFRESH_INTERVAL, startDemo, type Demo, type DemoProvider } from '../../scripts/demo/run.js'
import { ADMIN_GROUP, DEMO_ACCOUNTS, PARTNER_ACCOUNTS } from '../../scripts/demo/idp.js'

/** Through the gateway's button for `provider` and that provider's form: the jar ends up signed in. */
async function ssoSignIn (demo: Demo, provider: DemoProvider, jar: CookieJar, account: { username: string, password: string }): Promise<number> {
  const base = demo.url.slice(0, -1)
  const start = await fetchWithJar(jar, `${base}/login/oidc?provider=${provider.id}`)
  const authorize = start.headers.get('location') ?? ''
  if (!authorize.startsWith(provider.issuer + '/')) throw new Error(`/login/oidc?provider=${provider.id} went to ${authorize}`)
  const back = await signInThroughProvider(authorize, jar, { login: account.username, password: account.password })
  return (await fetchWithJar(jar, back)).status
}

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
  t.same(demo.providers.map((p) => p.id), ['corp', 'partner'], 'two providers')
  t.same(demo.config.oidcProviders.map((p) => p.id), ['corp', 'partner'], 'both configured in the gateway, in that order')
  t.equal(demo.issuer, demo.providers[0]!.issuer, 'demo.issuer is the first one\'s')
  t.not(demo.providers[0]!.issuer, demo.providers[1]!.issuer, 'each its own issuer')
  for (const p of demo.config.oidcProviders) {
    t.equal(p.refreshInterval, DEMO_REFRESH_INTERVAL, `${p.id}: sessions re-validated every 30 s`)
    t.equal(p.adminGroup, ADMIN_GROUP, `${p.id}: the admin group`)
  }
  t.same(demo.providers[0]!.accounts, DEMO_ACCOUNTS)
  t.same(demo.providers[1]!.accounts, PARTNER_ACCOUNTS)
  t.ok(DEMO_ACCOUNTS.some((a) => a.groups.includes(ADMIN_GROUP)), 'one account is in the admin group')
  t.ok(DEMO_ACCOUNTS.some((a) => !a.groups.includes(ADMIN_GROUP)), 'and others are not')
  const usernames = [...DEMO_ACCOUNTS, ...PARTNER_ACCOUNTS].map((a) => a.username)
  t.equal(new Set(usernames).size, usernames.length, 'no username at both providers (one username is one identity)')

  t.test('the login page offers a button per provider and the local form', async (t) => {
    const page = await http(`${demo.url}login`, { headers: { accept: 'text/html' } })
    t.equal(page.status, 200)
    t.match(page.body, 'id="sso-corp" href="/login/oidc?provider=corp&amp;next=%2F">Sign in with Demo Corp</a>')
    t.match(page.body, 'id="sso-partner" href="/login/oidc?provider=partner&amp;next=%2F">Sign in with Demo Partner</a>')
    t.ok(page.body.indexOf('id="sso-corp"') < page.body.indexOf('id="sso-partner"'), 'corp first')
    t.notMatch(page.body, 'data-unavailable', 'both providers discovered')
    t.match(page.body, 'id="password"')
  })

  t.test('the local demo account signs in', async (t) => {
    const base = demo.url.slice(0, -1)
    const { response } = await loginLocal(base, demo.localAccount.username, { password: demo.localAccount.password, next: '/hello' })
    t.equal(response.status, 303)
    t.equal(response.headers.location, '/hello')
  })

  t.test('the first provider signs its demo accounts in through its own form, with their groups', async (t) => {
    const settings = demo.config.oidc!
    t.equal(settings.id, 'corp')
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

  t.test('each provider signs its own accounts in through the gateway, and only its own', async (t) => {
    const base = demo.url.slice(0, -1)
    for (const provider of demo.providers) {
      for (const account of provider.accounts) {
        const jar = new CookieJar()
        t.equal(await ssoSignIn(demo, provider, jar, account), 302, `${account.username} at ${provider.id}`)
        const me = await fetchWithJar(jar, `${base}/`, { headers: { accept: 'text/html' } })
        const page = await me.text()
        t.match(page, `<code>x-user</code></th><td><code>${account.username}</code>`, `the upstream sees ${account.username}`)
        t.match(page, `<code>x-groups</code></th><td><code>${account.groups.join(',')}</code>`)
        t.match(page, `<code>x-admin</code></th><td><code>${String(account.groups.includes(ADMIN_GROUP))}</code>`)
      }
    }
    const other = demo.providers[0]!.accounts[0]!
    await t.rejects(ssoSignIn(demo, demo.providers[1]!, new CookieJar(), other), /login form again/, `${other.username} is not an account at partner`)
  })

  t.test('signing out at a provider ends the gateway sessions it opened, and only those (back-channel logout)', async (t) => {
    const base = demo.url.slice(0, -1)
    const [corp, partner] = demo.providers as [DemoProvider, DemoProvider]
    const corpJar = new CookieJar()
    const partnerJar = new CookieJar()
    const bob = corp.accounts.find((a) => !a.groups.includes(ADMIN_GROUP))!
    t.equal(await ssoSignIn(demo, corp, corpJar, bob), 302, 'bob signed in at corp')
    t.equal(await ssoSignIn(demo, partner, partnerJar, partner.accounts[0]!), 302, 'pat signed in at partner')
    const whoami = async (jar: CookieJar): Promise<number> => (await fetchWithJar(jar, `${base}/whoami`, { headers: { accept: 'application/json' } })).status
    t.equal(await whoami(corpJar), 200)
    t.equal(await whoami(partnerJar), 200)
    const clientId = (id: string): string => demo.config.oidcProviders.find((p) => p.id === id)!.clientId
    // At the provider itself, not through the gateway's sign-out.
    await followEndSession(`${partner.issuer}/session/end?client_id=${clientId('partner')}`, partnerJar)
    t.equal(await whoami(partnerJar), 401, 'the partner session ended')
    t.equal(await whoami(corpJar), 200, 'the corp session did not')
    await followEndSession(`${corp.issuer}/session/end?client_id=${clientId('corp')}`, corpJar)
    t.equal(await whoami(corpJar), 401, 'signing out at corp ends the corp session')
  })

  t.test('one browser signed in at both providers keeps both provider sessions (their cookies do not collide)', async (t) => {
    const base = demo.url.slice(0, -1)
    const [corp, partner] = demo.providers as [DemoProvider, DemoProvider]
    const jar = new CookieJar()
    /** The gateway's session ends (say, SESSION_MAX_AGE); the providers' sessions stay. */
    const gatewaySessionEnds = (): void => { for (const c of jar.all()) if (c.name.startsWith('authgate')) jar.delete(c.name) }
    t.equal(await ssoSignIn(demo, corp, jar, corp.accounts[1]!), 302)
    gatewaySessionEnds()
    t.equal(await ssoSignIn(demo, partner, jar, partner.accounts[1]!), 302)
    gatewaySessionEnds()
    // Back to corp: its provider session is still there, so it signs the user in without its form.
    const start = await fetchWithJar(jar, `${base}/login/oidc?provider=corp`)
    let url = start.headers.get('location')!
    for (let hops = 0; hops < 10 && !url.startsWith(base); hops++) {
      const answer = await fetchWithJar(jar, url)
      t.not(answer.status, 200, `no form at ${new URL(url).pathname}`)
      if (answer.status === 200) break
      url = new URL(answer.headers.get('location')!, url).href
    }
    t.ok(url.startsWith(`${base}/auth/oidc/callback?`), 'straight back to the gateway')
    t.equal((await fetchWithJar(jar, url)).status, 302)
    const me = await (await fetchWithJar(jar, `${base}/`, { headers: { accept: 'text/html' } })).text()
    t.match(me, `<code>x-user</code></th><td><code>${corp.accounts[1]!.username}</code>`)
  })
})

const groupChanges = [
  // corp: alice taken out of admins; partner: quinn given another group.
  { provider: 'corp', account: DEMO_ACCOUNTS.find((a) => a.groups.includes(ADMIN_GROUP))!, groups: ['staff'], adminBefore: true },
  { provider: 'partner', account: PARTNER_ACCOUNTS[1]!, groups: ['partners', 'auditors'], adminBefore: false }
]
t.test('a group changed at a provider\'s /accounts page reaches the demo upstream without a new sign-in', async (t) => {
  const demo = await startDemo({ port: 0, logLevel: 'silent', refreshInterval: 1 })
  t.teardown(demo.close)
  t.equal(DEMO_PROVIDERS.length, groupChanges.length, 'every provider')
  for (const change of groupChanges) {
    await t.test(change.provider, async (t) => {
      const provider = demo.providers.find((p) => p.id === change.provider)!
      const base = demo.url.slice(0, -1)
      const jar = new CookieJar()
      t.equal(await ssoSignIn(demo, provider, jar, change.account), 302, 'signed in through SSO')
      const page = async (): Promise<string> => await (await fetchWithJar(jar, `${base}/`, { headers: { accept: 'text/html' } })).text()
      const before = await page()
      t.match(before, `<code>x-admin</code></th><td><code>${String(change.adminBefore)}</code>`, `the upstream sees X-Admin: ${String(change.adminBefore)}`)
      t.match(before, `<code>x-groups</code></th><td><code>${change.account.groups.join(',')}</code>`)

      const accounts = await http(`${provider.issuer}/accounts`)
      t.equal(accounts.status, 200)
      const token = /name="token" value="([\w-]+)"/.exec(accounts.body)?.[1]
      t.ok(token, 'the accounts page has its form token')
      const post = async (body: Record<string, string>, origin = provider.issuer): Promise<number> =>
        (await fetch(`${provider.issuer}/accounts`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: new URLSearchParams(body) })).status
      const groups = change.groups.join(', ')
      t.equal(await post({ username: change.account.username, groups, token: 'wrong' }), 400, 'a wrong form token is refused')
      t.equal(await post({ username: change.account.username, groups, token: token! }, 'http://evil.test'), 400, 'a post from another site is refused')
      t.equal(await post({ username: change.account.username, groups, token: token! }), 303, `${change.account.username}'s groups changed`)

      // The session re-validates (refresh token) within the interval; polled as a user reloading the page.
      const expected = `<code>x-groups</code></th><td><code>${change.groups.join(',')}</code>`
      const deadline = Date.now() + 10_000
      let now = ''
      while (Date.now() < deadline) {
        now = await page()
        if (now.includes(expected)) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      t.match(now, expected, `the upstream sees X-Groups: ${change.groups.join(',')}`)
      t.match(now, /<code>x-admin<\/code><\/th><td><code>false<\/code>/, 'and X-Admin: false')
    })
  }
  t.equal(demo.providers[1]!.accounts.find((a) => a.username === 'alice'), undefined, 'each provider changed its own accounts only')
  t.same(demo.providers[0]!.accounts.find((a) => a.username === 'bob')!.groups, ['staff'])
})
