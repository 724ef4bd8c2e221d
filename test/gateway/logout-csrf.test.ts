// Logout CSRF over HTTP: a /logout that may come from another site (a link, an image, a form there)
// signs nobody out and shows the "Sign out?" page; the application's own link and form, the
// confirmation form's CSRF token and clients that say nothing (curl) still sign out at once.
import t, { type Test } from 'tap'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies, type Response } from '../support/http.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { CLIENT_ID, CLIENT_SECRET, POST_LOGOUT_URI, REDIRECT_URI, identityAtUpstream, ssoLogin, startSsoGateway } from '../support/sso.js'

const upstream = await startUpstream()
t.teardown(upstream.close)
const EVIL = 'http://evil.example'

/** Whether these cookies still reach the upstream as a signed-in user. */
const signedIn = async (gw: TestGateway, cookies: Record<string, string>): Promise<boolean> =>
  (await http(`${gw.url}/api/thing`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })).status === 200

const logout = async (gw: TestGateway, cookies: Record<string, string>, method: 'GET' | 'POST', headers: Record<string, string> = {}, body?: string): Promise<Response> =>
  await http(`${gw.url}/logout`, {
    method,
    headers: { cookie: cookieHeader(cookies), ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...headers },
    ...(body !== undefined ? { body } : {})
  })

/** The confirmation page, answered instead of signing out: nothing about the session changed. */
const assertConfirmationPage = (t: Test, res: Response, status: number): void => {
  t.equal(res.status, status, 'status')
  t.match(res.headers['content-type'], /^text\/html/)
  t.match(res.body, /<h1>Sign out\?<\/h1>/, 'asks first')
  t.match(res.body, /<form method="post" action="\/logout">/, 'a POST form to /logout')
  t.match(res.body, /name="csrf_token" value="[\w-]{43}"/, 'carrying a CSRF token')
  t.notMatch(res.body, /<script|\sstyle=|\son[a-z]+=|<style|autofocus/i, 'no script, inline style or handler; no autofocus on the button')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  t.match(res.headers['content-security-policy'], /default-src 'none'/)
  t.equal(res.headers['x-frame-options'], 'DENY', 'cannot be framed (no clickjacking of the button)')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.location, undefined, 'no redirect (for SSO: not on to the IdP)')
  t.notOk(Object.hasOwn(setCookies(res.headers), 'authgate'), 'the session cookie is left alone')
}

t.test('GET /logout that may come from another site asks first and changes nothing', async (t) => {
  const gw = await startGateway({ APP_NAME: 'TimeTracker' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'alice')
  const crossSite: Array<[string, Record<string, string>]> = [
    ['Sec-Fetch-Site: cross-site (a link or image on another site)', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site (a sibling subdomain)', { 'sec-fetch-site': 'same-site' }],
    ['Sec-Fetch-Site: cross-site with a Referer of the gateway itself', { 'sec-fetch-site': 'cross-site', referer: `${gw.url}/` }],
    ['a foreign Referer, no Sec-Fetch-Site (plain http, older browsers)', { referer: `${EVIL}/page` }],
    ['a foreign Origin, no Sec-Fetch-Site', { origin: EVIL }],
    ['a Referer on another port of the same host', { referer: 'http://127.0.0.1:1/' }],
    ['an unreadable Sec-Fetch-Site', { 'sec-fetch-site': 'bogus' }]
  ]
  for (const [name, headers] of crossSite) {
    await t.test(name, async (t) => {
      assertConfirmationPage(t, await logout(gw, cookies, 'GET', headers), 200)
      t.ok(await signedIn(gw, cookies), 'still signed in')
    })
  }
  await t.test('the page names the application and offers a way back', async (t) => {
    const res = await logout(gw, cookies, 'GET', { 'sec-fetch-site': 'cross-site' })
    t.match(res.body, /Sign out\? · TimeTracker<\/title>/)
    t.match(res.body, /<a [^>]*href="\/"[^>]*>Stay signed in<\/a>/)
  })
})

t.test('GET /logout from the application itself, or from a client that says nothing, signs out at once', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  const oneClick: Array<[string, Record<string, string>]> = [
    ["the application's own link (Sec-Fetch-Site: same-origin)", { 'sec-fetch-site': 'same-origin', referer: `${gw.url}/projects` }],
    ['same-origin without a Referer (Referrer-Policy: no-referrer)', { 'sec-fetch-site': 'same-origin' }],
    ['typed into the address bar or a bookmark (Sec-Fetch-Site: none)', { 'sec-fetch-site': 'none' }],
    ['curl or an old client: no Sec-Fetch-Site, Origin or Referer', {}],
    ['no Sec-Fetch-Site, a Referer of the gateway', { referer: `${gw.url}/projects?x=1` }]
  ]
  for (const [name, headers] of oneClick) {
    await t.test(name, async (t) => {
      const { cookies } = await loginLocal(gw.url, 'bob')
      const res = await logout(gw, cookies, 'GET', headers)
      t.equal(res.status, 303)
      t.equal(res.headers.location, '/login?signed_out=1')
      t.equal(setCookies(res.headers).authgate, '', 'session cookie cleared')
    })
  }
})

t.test('POST /logout signs out only with a valid CSRF token or from the gateway itself', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)

  await t.test('a form on another site, or a bare POST, gets the confirmation page', async (t) => {
    const { cookies } = await loginLocal(gw.url, 'carol')
    const refused: Array<[string, Record<string, string>, string | undefined]> = [
      ['no headers, no token (curl -X POST)', {}, undefined],
      ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }, ''],
      ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }, ''],
      ['a foreign Origin', { origin: EVIL }, ''],
      ['Origin: null (a sandboxed frame)', { origin: 'null' }, ''],
      ['Sec-Fetch-Site: none', { 'sec-fetch-site': 'none' }, ''],
      ['only a Referer of the gateway (not proof of origin)', { referer: `${gw.url}/` }, ''],
      ['a wrong csrf_token', { origin: EVIL }, 'csrf_token=' + 'A'.repeat(43)],
      ['a csrf_token but no CSRF cookie', {}, 'csrf_token=' + 'A'.repeat(43)]
    ]
    for (const [name, headers, body] of refused) {
      await t.test(name, async (t) => {
        assertConfirmationPage(t, await logout(gw, cookies, 'POST', headers, body), 403)
        t.ok(await signedIn(gw, cookies), 'still signed in')
      })
    }
  })

  const allowed: Array<[string, Record<string, string>]> = [
    ["the application's own form (Sec-Fetch-Site: same-origin)", { 'sec-fetch-site': 'same-origin' }],
    ['an Origin equal to the gateway\'s (no Sec-Fetch-Site: plain http)', { origin: gw.url }]
  ]
  for (const [name, headers] of allowed) {
    await t.test(name, async (t) => {
      const { cookies } = await loginLocal(gw.url, 'dave')
      const res = await logout(gw, cookies, 'POST', headers)
      t.equal(res.status, 303)
      t.equal(res.headers.location, '/login?signed_out=1')
      t.equal(setCookies(res.headers).authgate, '', 'session cookie cleared')
    })
  }

  await t.test("the confirmation page's form signs out (its CSRF token)", async (t) => {
    const { cookies } = await loginLocal(gw.url, 'erin')
    const page = await logout(gw, cookies, 'GET', { 'sec-fetch-site': 'cross-site' })
    const browser = { ...cookies, ...setCookies(page.headers) }
    const token = csrfTokenFrom(page.body)
    // As the browser sends it: no Sec-Fetch-Site (plain http) and Origin: null (the page's no-referrer policy).
    const res = await logout(gw, browser, 'POST', { origin: 'null' }, new URLSearchParams({ csrf_token: token }).toString())
    t.equal(res.status, 303)
    t.equal(res.headers.location, '/login?signed_out=1')
    t.equal(setCookies(res.headers).authgate, '', 'session cookie cleared')
    t.notOk(await signedIn(gw, { ...browser, authgate: '' }), 'signed out')
  })

  await t.test('a valid token posted from another site (a tossed CSRF cookie) is still refused', async (t) => {
    const { cookies } = await loginLocal(gw.url, 'frank')
    const page = await logout(gw, cookies, 'GET', { 'sec-fetch-site': 'cross-site' })
    const browser = { ...cookies, ...setCookies(page.headers) }
    const body = new URLSearchParams({ csrf_token: csrfTokenFrom(page.body) }).toString()
    assertConfirmationPage(t, await logout(gw, browser, 'POST', { 'sec-fetch-site': 'same-site' }, body), 403)
    t.ok(await signedIn(gw, cookies), 'still signed in')
  })
})

t.test("the gateway's own origin: PUBLIC_URL, or the request's own (through TRUST_PROXY)", async (t) => {
  await t.test('PUBLIC_URL set: only its origin is the gateway', async (t) => {
    const gw = await startGateway({ PUBLIC_URL: 'https://tt.example.com' }, { upstream: upstream.url })
    t.teardown(gw.close)
    const { cookies } = await loginLocal(gw.url, 'gina')
    assertConfirmationPage(t, await logout(gw, cookies, 'POST', { origin: gw.url }), 403)
    assertConfirmationPage(t, await logout(gw, cookies, 'GET', { referer: `${gw.url}/` }), 200)
    t.ok(await signedIn(gw, cookies), 'the address it was reached at is not PUBLIC_URL')
    t.equal((await logout(gw, cookies, 'POST', { origin: 'https://tt.example.com' })).status, 303, 'an Origin of PUBLIC_URL signs out')
  })

  await t.test('behind a trusted proxy: X-Forwarded-Proto and X-Forwarded-Host name the origin', async (t) => {
    const gw = await startGateway({ TRUST_PROXY: '127.0.0.1' }, { upstream: upstream.url })
    t.teardown(gw.close)
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'tt.example.com' }
    const { cookies } = await loginLocal(gw.url, 'hank')
    assertConfirmationPage(t, await logout(gw, cookies, 'POST', { ...forwarded, origin: gw.url }), 403)
    t.equal((await logout(gw, cookies, 'POST', { ...forwarded, origin: 'https://tt.example.com' })).status, 303)
  })

  await t.test('an untrusted peer cannot name the origin with X-Forwarded-Host', async (t) => {
    const gw = await startGateway({}, { upstream: upstream.url })
    t.teardown(gw.close)
    const { cookies } = await loginLocal(gw.url, 'ivan')
    const forged = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', origin: 'https://evil.example' }
    assertConfirmationPage(t, await logout(gw, cookies, 'POST', forged), 403)
    t.ok(await signedIn(gw, cookies))
  })
})

t.test('SSO: a cross-site GET /logout does not go on to the IdP; the confirmation form does', async (t) => {
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT_URI] }],
    accounts: { alice: { preferred_username: 'alice', email: 'alice@example.test', email_verified: true, groups: [] } }
  })
  t.teardown(() => op.close())
  const gw = await startSsoGateway(op.issuer, { OIDC_POST_LOGOUT_REDIRECT_URI: POST_LOGOUT_URI }, upstream.url)
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  t.equal((await ssoLogin(gw, jar, { login: 'alice', password: 'pw' })).status, 302)

  const page = await fetchWithJar(jar, `${gw.url}/logout`, { headers: { 'sec-fetch-site': 'cross-site' } })
  const body = await page.text()
  t.equal(page.status, 200)
  t.equal(page.headers.get('location'), null, 'not sent to the end-session endpoint')
  t.match(body, /<h1>Sign out\?<\/h1>/)
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'alice', 'still signed in')
  t.notOk(op.calls.some((call) => call.path.includes('session/end')), 'the IdP heard nothing')
  // Browsers check form-action on every redirect after the form: the IdP's hosts must be allowed.
  t.match(page.headers.get('content-security-policy'), /form-action 'self' \*(;|$)/)

  const confirmed = await fetchWithJar(jar, `${gw.url}/logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ csrf_token: csrfTokenFrom(body) }).toString()
  })
  t.equal(confirmed.status, 303)
  const target = new URL(confirmed.headers.get('location')!)
  t.equal(target.origin + target.pathname, `${op.issuer}/session/end`, 'on to the IdP to end its session too')
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'gateway session gone')
})
