// `npm run demo` in a real Chromium, as a newcomer meets it: the login page with a button per demo
// identity provider and the local form, single sign-on through each provider's own pages, the demo
// page with the verified identity, and a sign-out that ends the provider session too.
import t from 'tap'
import { browserForFile, collectCspViolations, DESKTOP, horizontalOverflow, MOBILE, requireChromium } from '../support/browser.js'
import { startDemo } from '../../scripts/demo/run.js'
import { ADMIN_GROUP, DEMO_ACCOUNTS, PARTNER_ACCOUNTS } from '../../scripts/demo/idp.js'
import { MESSAGES } from '../../src/pages/login.js'

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemo({ port: 0, logLevel: 'silent' })
  closeWithFile(demo.close)
  const base = demo.url.slice(0, -1)
  const [corp, partner] = demo.providers
  if (corp === undefined || partner === undefined) throw new Error('the demo has two providers')

  t.test('the demo login page: a button per provider and the local form, desktop and phone', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    await page.goto(demo.url)
    t.equal(new URL(page.url()).pathname, '/login')
    t.same(await page.locator('.sso-buttons a').allTextContents(), ['Sign in with Demo Corp', 'Sign in with Demo Partner'], 'both buttons, in order')
    for (const p of demo.providers) t.ok(await page.getByRole('link', { name: p.buttonText }).isVisible(), `the ${p.id} button`)
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
    await page.getByRole('link', { name: corp.buttonText }).click()
    await page.waitForURL((url) => url.origin === corp.issuer)
    t.match(await page.title(), /Demo Corp Identity Provider/, 'on the provider\'s own sign-in page')
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
    await page.waitForURL((url) => url.origin === corp.issuer)
    await page.getByRole('button', { name: 'Yes, sign me out' }).click()
    await page.waitForURL((url) => url.origin === base && url.pathname === '/login')
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)

    // The provider session ended too: SSO asks for the password again.
    await page.getByRole('link', { name: corp.buttonText }).click()
    await page.waitForURL((url) => url.origin === corp.issuer)
    t.ok(await page.getByLabel('Password').isVisible(), 'the provider asks again')
  })

  t.test('single sign-on through the second provider\'s pages, as its own user', async (t) => {
    const pat = PARTNER_ACCOUNTS[0]!
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await page.goto(`${base}/projects`)
    await page.getByRole('link', { name: partner.buttonText }).click()
    await page.waitForURL((url) => url.origin === partner.issuer)
    t.match(await page.title(), /Demo Partner Identity Provider/, 'on the second provider\'s own sign-in page')
    t.ok(await page.getByRole('cell', { name: pat.username, exact: true }).isVisible(), 'which lists its own demo accounts')
    t.equal(await page.getByRole('cell', { name: 'alice', exact: true }).count(), 0, 'not the first provider\'s')
    t.ok(await browser.screenshot(page, 'idp-partner-login'))
    await page.getByLabel('Username').fill(pat.username)
    await page.getByLabel('Password').fill(pat.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${base}/projects`)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), `Hello, ${pat.name}`)
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    const identity = await page.locator('dl').textContent()
    t.match(identity, /Administrator\s*no/)
    t.match(identity, new RegExp(`Groups\\s*${pat.groups.join(', ')}`))

    await page.getByRole('link', { name: 'Sign out' }).click()
    await page.waitForURL((url) => url.origin === partner.issuer)
    t.match(await page.locator('main').textContent(), /Sign out of the Demo Partner Identity Provider too\?/, 'the second provider\'s own sign-out')
    await page.getByRole('button', { name: 'Yes, sign me out' }).click()
    await page.waitForURL((url) => url.origin === base && url.pathname === '/login')
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    t.same(violations, [])
  })
}
