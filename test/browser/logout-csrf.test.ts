// Logout CSRF in a real Chromium: a page on another site (http://localhost:<port> while the gateway
// is http://127.0.0.1:<port>, two sites to a browser) links to, embeds or posts to /logout. The user
// stays signed in and sees "Sign out?"; the application's own Logout link signs out in one click;
// and for SSO the confirmation goes on to the IdP's end-session page (the page's form-action must
// allow that redirect).
import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startHostileIdp } from '../support/hostile-idp.js'
import { CookieJar } from '../support/browserless.js'
import { CLIENT_ID, CLIENT_SECRET, hostileLogin, startSsoGateway } from '../support/sso.js'
import { browserForFile, collectCspViolations, requireChromium } from '../support/browser.js'
import { startDemo } from '../../scripts/demo/run.js'
import { DEMO_ACCOUNTS } from '../../scripts/demo/idp.js'
import { MESSAGES } from '../../src/pages/login.js'

/** A tiny HTML server; `pages` maps a path to its body. Closed with the file. */
async function serve (host: string, pages: (port: number) => Record<string, string>): Promise<{ url: string, server: Server }> {
  let routes: Record<string, string> = {}
  const server = createServer((request, response) => {
    request.resume()
    const body = routes[(request.url ?? '/').split('?')[0]!]
    response.writeHead(body !== undefined ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' })
    response.end(body ?? 'not found')
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  routes = pages(port)
  return { url: `http://${host}:${port}`, server }
}

/** Another site's pages, each aiming at `target` (the gateway's /logout) in its own way. */
const attackerPages = (target: string): Record<string, string> => ({
  '/link': `<!doctype html><title>Prize</title><a href="${target}">Claim your prize</a>`,
  '/link-no-referrer': `<!doctype html><title>Prize</title><a href="${target}" rel="noreferrer">Claim your prize</a>`,
  '/embed': `<!doctype html><title>Cats</title><img src="${target}" alt=""><iframe src="${target}"></iframe><p>cats</p>`,
  '/form': `<!doctype html><title>Survey</title><form method="post" action="${target}"><button>Send</button></form>`
})

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const closeServer = (server: Server) => async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })

  // The application: every page has TimeTracker's "Logout" link, a plain same-origin GET.
  const app = await serve('127.0.0.1', () => ({ '/': '<!doctype html><title>TimeTracker</title><h1>Timesheet</h1><a href="/logout">Logout</a>' }))
  closeWithFile(closeServer(app.server))
  const gw: TestGateway = await startGateway({ APP_NAME: 'TimeTracker' }, { upstream: app.url })
  closeWithFile(gw.close)
  const attacker = await serve('localhost', () => attackerPages(`${gw.url}/logout`))
  closeWithFile(closeServer(attacker.server))

  const signIn = async (page: Page, username: string): Promise<void> => {
    await page.goto(`${gw.url}/`)
    await page.getByLabel('Username').fill(username)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${gw.url}/`)
  }
  /** Whether the browser still reaches the application signed in (a fresh tab, the same cookies). */
  const stillSignedIn = async (): Promise<boolean> => {
    const tab = await browser.context.newPage()
    try {
      await tab.goto(`${gw.url}/`)
      return new URL(tab.url()).pathname === '/' && await tab.getByRole('heading', { name: 'Timesheet' }).count() === 1
    } finally {
      await tab.close()
    }
  }
  /** Click, and wait until the browser has arrived back at the gateway (wherever it lands there). */
  const clickTo = async (page: Page, origin: string, target: Parameters<Page['getByRole']>): Promise<void> => {
    await page.getByRole(...target).click()
    await page.waitForURL((url) => url.origin === origin, { waitUntil: 'load' })
  }
  const isConfirmationPage = async (page: Page): Promise<boolean> =>
    new URL(page.url()).origin === gw.url && await page.getByRole('heading', { level: 1, name: 'Sign out?' }).count() === 1

  t.test('a link on another site shows "Sign out?" and signs nobody out', async (t) => {
    for (const path of ['/link', '/link-no-referrer']) {
      const page = await browser.freshPage()
      const violations = collectCspViolations(page)
      await signIn(page, 'alice')
      await page.goto(attacker.url + path)
      await clickTo(page, gw.url, ['link', { name: 'Claim your prize' }])
      t.ok(await isConfirmationPage(page), `${path}: the confirmation page`)
      t.equal(await page.title(), 'Sign out? · TimeTracker')
      t.ok(await stillSignedIn(), `${path}: still signed in`)
      if (path === '/link') t.ok(await browser.screenshot(page, 'logout-confirmation'))
      t.same(violations, [], 'nothing refused by the Content-Security-Policy')
    }
  })

  t.test('"Stay signed in" goes back to the application, still signed in', async (t) => {
    const page = await browser.freshPage()
    await signIn(page, 'bob')
    await page.goto(attacker.url + '/link')
    await clickTo(page, gw.url, ['link', { name: 'Claim your prize' }])
    t.ok(await isConfirmationPage(page), 'the confirmation page')
    await page.getByRole('link', { name: 'Stay signed in' }).click()
    await page.waitForURL(`${gw.url}/`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Timesheet')
  })

  t.test('"Sign out" on the confirmation page signs out', async (t) => {
    const page = await browser.freshPage()
    await signIn(page, 'carol')
    await page.goto(attacker.url + '/link')
    await clickTo(page, gw.url, ['link', { name: 'Claim your prize' }])
    t.ok(await isConfirmationPage(page), 'the confirmation page')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(`${gw.url}/login?signed_out=1`)
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    t.notOk(await stillSignedIn(), 'signed out')
  })

  t.test('an image and a frame on another site sign nobody out', async (t) => {
    const page = await browser.freshPage()
    await signIn(page, 'dave')
    await page.goto(attacker.url + '/embed', { waitUntil: 'load' })
    t.equal(await page.getByText('cats').count(), 1)
    t.ok(await stillSignedIn(), 'still signed in')
  })

  t.test('a form on another site posting to /logout signs nobody out', async (t) => {
    const page = await browser.freshPage()
    await signIn(page, 'erin')
    await page.goto(attacker.url + '/form')
    await clickTo(page, gw.url, ['button', { name: 'Send' }])
    t.ok(await isConfirmationPage(page), 'the confirmation page')
    t.ok(await stillSignedIn(), 'still signed in')
  })

  t.test("the application's own Logout link signs out in one click", async (t) => {
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await signIn(page, 'frank')
    await page.getByRole('link', { name: 'Logout' }).click()
    await page.waitForURL(`${gw.url}/login?signed_out=1`)
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    t.notOk(await stillSignedIn(), 'signed out')
    t.same(violations, [])
  })

  t.test('SSO: a link on another site does not reach the IdP; confirming goes on to its end-session page', async (t) => {
    const demo = await startDemo({ port: 0, logLevel: 'silent' })
    closeWithFile(demo.close)
    const base = demo.url.slice(0, -1) // http://localhost:<port>; the other site is 127.0.0.1
    const elsewhere = await serve('127.0.0.1', () => attackerPages(`${base}/logout`))
    closeWithFile(closeServer(elsewhere.server))
    const account = DEMO_ACCOUNTS[0]!

    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await page.goto(`${base}/`)
    await page.getByRole('link', { name: demo.providers[0]!.buttonText }).click()
    await page.waitForURL((url) => url.origin === demo.issuer)
    await page.getByLabel('Username').fill(account.username)
    await page.getByLabel('Password').fill(account.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${base}/`)
    t.match(await page.getByRole('heading', { level: 1 }).textContent(), /^Hello, /)

    await page.goto(elsewhere.url + '/link')
    await clickTo(page, base, ['link', { name: 'Claim your prize' }])
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign out?', 'asked, not sent to the IdP')
    await page.goto(`${base}/`)
    t.match(await page.getByRole('heading', { level: 1 }).textContent(), /^Hello, /, 'still signed in')

    await page.goto(elsewhere.url + '/link')
    await clickTo(page, base, ['link', { name: 'Claim your prize' }])
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL((url) => url.origin === demo.issuer)
    await page.getByRole('button', { name: 'Yes, sign me out' }).click()
    await page.waitForURL((url) => url.origin === base && url.pathname === '/login')
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    t.same(violations, [], 'the redirect to the IdP was not refused by form-action')
  })

  t.test('SSO: confirming follows an end-session endpoint that redirects on to another site (form-action on every hop)', async (t) => {
    // Many IdPs (Keycloak with id_token_hint, Auth0, Okta) end their session and redirect at once to
    // the post-logout URI, which may be on yet another origin.
    const homepage = await serve('localhost', () => ({ '/goodbye': '<!doctype html><title>Example Corp</title><h1>Goodbye</h1>' }))
    closeWithFile(closeServer(homepage.server))
    const idp = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET })
    closeWithFile(async () => { await idp.close() })
    const sso = await startSsoGateway(idp.issuer, { OIDC_POST_LOGOUT_REDIRECT_URI: `${homepage.url}/goodbye` }, app.url)
    closeWithFile(sso.close)
    const elsewhere = await serve('localhost', () => attackerPages(`${sso.url}/logout`))
    closeWithFile(closeServer(elsewhere.server))

    // Signed in through the IdP over HTTP; the browser gets that session cookie.
    const jar = new CookieJar()
    t.equal((await hostileLogin(sso, jar)).response.status, 302)
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await browser.context.addCookies(jar.all().filter((c) => c.name.startsWith('authgate')).map((c) => ({ name: c.name, value: c.value, url: sso.url })))
    await page.goto(`${sso.url}/`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Timesheet', 'signed in')

    await page.goto(elsewhere.url + '/link')
    await clickTo(page, sso.url, ['link', { name: 'Claim your prize' }])
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign out?')
    t.equal(idp.endSessionRequests.length, 0, 'the IdP heard nothing yet')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(`${homepage.url}/goodbye?state=*`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Goodbye', 'through the IdP to the post-logout page')
    t.equal(idp.endSessionRequests.length, 1)
    t.same(violations, [], 'no hop refused by form-action')
  })
}
