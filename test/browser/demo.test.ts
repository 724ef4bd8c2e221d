// `npm run demo` in a real Chromium, as a newcomer meets it: the login page with both ways in,
// single sign-on through the Demo Identity Provider's own pages, the demo page with the verified
// identity, and a sign-out that ends the provider session too.
import t from 'tap'
import { collectCspViolations, DESKTOP, horizontalOverflow, launchBrowser, MOBILE, requireChromium, type TestBrowser } from '../support/browser.js'
import { startDemo } from '../../scripts/demo/run.js'
import { ADMIN_GROUP, DEMO_ACCOUNTS } from '../../scripts/demo/idp.js'
import { MESSAGES } from '../../src/pages/login.js'

if (requireChromium(t)) {
  const browser: TestBrowser = await launchBrowser()
  const demo = await startDemo({ port: 0, logLevel: 'silent' })
  // The browser first: a socket it opened ahead of time (and never used) would hold the server's
  // close until Node's 60 s header timeout.
  t.teardown(async () => { await browser.close(); await demo.close() })
  const base = demo.url.slice(0, -1)

  t.test('the demo login page: SSO button and local form, desktop and phone', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    await page.goto(demo.url)
    t.equal(new URL(page.url()).pathname, '/login')
    const sso = page.getByRole('link', { name: 'Sign in with SSO' })
    t.ok(await sso.isVisible(), 'the SSO button')
    t.ok(await page.getByLabel('Password').isVisible(), 'the local form')
    t.equal(await page.getByRole('separator', { name: 'or' }).count(), 1)
    t.ok(await browser.screenshot(page, 'login-desktop'))
    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0)
    t.ok(await browser.screenshot(page, 'login-mobile'))
    t.same(violations, [])
  })

  t.test('the local demo account reaches the demo page', async (t) => {
    const page = await browser.freshPage()
    await page.goto(`${base}/welcome`)
    await page.getByLabel('Username').fill(demo.localAccount.username)
    await page.getByLabel('Password').fill(demo.localAccount.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${base}/welcome`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, Dave Local')
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    t.ok(await browser.screenshot(page, 'demo-page-local'))
  })

  t.test('single sign-on through the provider\'s pages, then sign-out everywhere', async (t) => {
    const alice = DEMO_ACCOUNTS.find((a) => a.groups.includes(ADMIN_GROUP))!
    const page = await browser.freshPage()
    await page.goto(`${base}/reports?week=3`)
    await page.getByRole('link', { name: 'Sign in with SSO' }).click()
    await page.waitForURL((url) => url.origin === demo.issuer)
    t.match(await page.title(), /Demo Identity Provider/, 'on the provider\'s own sign-in page')
    t.ok(await browser.screenshot(page, 'idp-login'))
    await page.getByLabel('Username').fill(alice.username)
    await page.getByLabel('Password').fill(alice.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${base}/reports?week=3`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), `Hello, ${alice.name}`, '`next` kept through the provider')
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    const identity = await page.locator('dl').textContent()
    t.match(identity, /Administrator\s*yes/, 'the admin group made alice an administrator')
    t.match(identity, new RegExp(`Groups\\s*${alice.groups.join(', ')}`))
    t.match(identity, alice.email)
    t.ok(await browser.screenshot(page, 'demo-page-sso'))

    await page.getByRole('link', { name: 'Sign out' }).click()
    await page.waitForURL((url) => url.origin === demo.issuer)
    await page.getByRole('button', { name: 'Yes, sign me out' }).click()
    await page.waitForURL((url) => url.origin === base && url.pathname === '/login')
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)

    // The provider session ended too: SSO asks for the password again.
    await page.getByRole('link', { name: 'Sign in with SSO' }).click()
    await page.waitForURL((url) => url.origin === demo.issuer)
    t.ok(await page.getByLabel('Password').isVisible(), 'the provider asks again')
  })
}
