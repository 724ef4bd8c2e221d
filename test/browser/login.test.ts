// Local sign-in in a real Chromium: the login page, `next`, signing out, keyboard only, every
// message a user can meet, and the 502 page. The gateway fronts the real demo upstream, which
// verifies the signed identity headers it receives.
import t from 'tap'
import type { Page } from 'playwright-core'
import { startGateway, HEADER_SIGNING_SECRET, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { loginLocal } from '../support/http.js'
import {
  browserForFile, collectCspViolations, describedBy, DESKTOP, focusedId, horizontalOverflow, MOBILE,
  requireChromium, styleOf
} from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MESSAGES } from '../../src/pages/login.js'

const LOGO_FILE = new URL('../fixtures/logo.svg', import.meta.url).pathname
const PASSWORD = 'correct horse battery staple'

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)

  /** A gateway in front of the demo upstream (or another upstream), closed when the file ends. */
  const gateway = async (env: Record<string, string> = {}, upstream = demo.url.href): Promise<TestGateway> => {
    const gw = await startGateway({ APP_NAME: 'TimeTracker', LOGO_FILE, ...env }, { upstream })
    closeWithFile(gw.close)
    return gw
  }
  const addUser = async (gw: TestGateway, username: string, options: { active?: boolean } = {}): Promise<void> => {
    await gw.users.create({ username, passwordHash: await hashPassword(PASSWORD) })
    if (options.active === false) await gw.users.setActive(username, false)
  }
  /** Submit the login form as a user would (click), and return the HTTP status of the answer. */
  const submit = async (page: Page, username: string, password?: string): Promise<number> => {
    await page.getByLabel('Username').fill(username)
    if (password !== undefined) await page.getByLabel('Password').fill(password)
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Sign in' }).click()
    ])
    await page.waitForLoadState()
    return response.status()
  }
  const alertText = async (page: Page): Promise<string> => (await page.getByRole('alert').textContent() ?? '').trim()

  const local = await gateway()

  t.test('the login page renders styled under its CSP, at desktop and phone widths', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    const response = await page.goto(`${local.url}/login`)
    t.equal(response?.status(), 200)
    t.match(response?.headers()['content-security-policy'], /default-src 'none'/)
    t.equal(await page.getAttribute('html', 'lang'), 'en')
    t.equal(await page.title(), 'Sign in · TimeTracker')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in')
    t.equal(await focusedId(page), 'username', 'the username field has focus on arrival')
    t.ok(await page.getByRole('textbox', { name: 'Username' }).isVisible(), 'the input is named by its label')
    // The stylesheet applied: the primary button has the accent colour, the card its width.
    t.same(await styleOf(page, 'button[type=submit]', ['background-color']), { 'background-color': 'rgb(11, 92, 173)' })
    t.same(await styleOf(page, 'main', ['max-width']), { 'max-width': '400px' })
    t.equal(await page.evaluate("(() => { const img = document.querySelector('header.brand img'); return img.complete && img.naturalWidth > 0 })()"), true, 'the LOGO_FILE loaded')
    t.equal(await horizontalOverflow(page), 0)
    t.ok(await browser.screenshot(page, 'login-local-desktop'))

    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0, 'no horizontal scrolling on a phone')
    const card = await page.locator('main').boundingBox()
    t.ok(card !== null && card.width <= MOBILE.width && card.x >= 0, 'the card fits the phone screen')
    t.ok(await browser.screenshot(page, 'login-local-mobile'))
    await page.setViewportSize({ width: 320, height: 640 })
    t.equal(await horizontalOverflow(page), 0, 'nor at 320 px, the narrowest phones')
    t.same(violations, [], 'nothing refused by the Content-Security-Policy')
  })

  t.test('local sign-in keeps `next`, reaches the app with verified identity, and signs out', async (t) => {
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await page.goto(`${local.url}/projects/42?tab=time&sort=desc`)
    t.equal(new URL(page.url()).pathname, '/login', 'an anonymous visit is sent to the login page')
    t.equal(new URL(page.url()).searchParams.get('next'), '/projects/42?tab=time&sort=desc')
    t.equal(await submit(page, 'erin'), 303)
    t.equal(page.url(), `${local.url}/projects/42?tab=time&sort=desc`, 'back where the user started')
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, erin')
    t.ok(await browser.screenshot(page, 'demo-upstream-local'))

    await page.getByRole('link', { name: 'Sign out' }).click()
    await page.waitForURL(`${local.url}/login?signed_out=1`)
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    t.equal(await page.getByRole('alert').count(), 0, 'signing out is not an error')
    t.ok(await browser.screenshot(page, 'signed-out'))
    await page.goto(`${local.url}/projects/42`)
    t.equal(new URL(page.url()).pathname, '/login', 'the session is gone')
    t.same(violations, [])
  })

  t.test('keyboard only: sign in and out without a pointer, focus always visible', async (t) => {
    const gw = await gateway({ LOCAL_AUTH: 'password' })
    await addUser(gw, 'kim')
    const page = await browser.freshPage()
    await page.goto(`${gw.url}/reports?week=12`)
    t.equal(await focusedId(page), 'username')
    await page.keyboard.type('kim')
    await page.keyboard.press('Tab')
    t.equal(await focusedId(page), 'password', 'Tab goes from username to password')
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press('Tab')
    t.equal(await page.evaluate('document.activeElement.textContent'), 'Sign in', 'then to the Sign in button')
    const ring = await styleOf(page, ':focus', ['outline-style', 'outline-width'])
    t.same(ring, { 'outline-style': 'solid', 'outline-width': '3px' }, 'the focused button shows a ring')
    await page.keyboard.press('Shift+Tab')
    t.same(await styleOf(page, ':focus', ['outline-style']), { 'outline-style': 'solid' }, 'the focused input shows a ring')
    await page.keyboard.press('Enter') // Enter in a field submits the form
    await page.waitForURL(`${gw.url}/reports?week=12`)
    t.match(await page.getByRole('status').textContent(), /Signature verified/)

    await page.keyboard.press('Tab')
    t.equal(await page.evaluate('document.activeElement.textContent'), 'Sign out', 'the demo page has one stop: Sign out')
    await page.keyboard.press('Enter')
    await page.waitForURL(`${gw.url}/login?signed_out=1`)
    t.equal(await focusedId(page), 'username')
  })

  t.test('every sign-in message is shown inline, announced, and tied to the fields', async (t) => {
    const gw = await gateway({ LOCAL_AUTH: 'password' })
    await addUser(gw, 'alice')
    await addUser(gw, 'dora', { active: false })
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await page.goto(`${gw.url}/login?next=%2Fdashboard`)

    t.equal(await submit(page, 'alice', 'wrong password'), 401)
    t.equal(await alertText(page), `Error: ${MESSAGES.invalidCredentials}`, 'wrong credentials')
    t.equal(await page.getByLabel('Username').inputValue(), 'alice', 'the username is kept')
    t.equal(await page.getByLabel('Password').inputValue(), '', 'the password is not')
    t.equal(await focusedId(page), 'password', 'focus waits in the password field')
    t.equal(await page.getAttribute('#password', 'aria-invalid'), 'true')
    t.equal(await describedBy(page, '#password'), `Error: ${MESSAGES.invalidCredentials}`, 'a screen reader hears the error with the field')
    t.equal(await page.locator('input[name=next]').inputValue(), '/dashboard', '`next` survives a failed attempt')
    t.ok(await browser.screenshot(page, 'login-error-desktop'))

    t.equal(await submit(page, 'dora', PASSWORD), 403)
    t.equal(await alertText(page), `Error: ${MESSAGES.disabled}`, 'disabled account')

    t.equal(await submit(page, 'no such name!', PASSWORD), 400)
    t.equal(await alertText(page), `Error: ${MESSAGES.invalidUsername}`, 'malformed username')

    // The form outlived its CSRF cookie (an old tab, cleared cookies): it has expired.
    await page.goto(`${gw.url}/login?next=%2Fdashboard`)
    await page.context().clearCookies()
    t.equal(await submit(page, 'alice', PASSWORD), 403)
    t.equal(await alertText(page), `Error: ${MESSAGES.csrf}`, 'expired form')
    t.equal(await submit(page, 'alice', PASSWORD), 303, 'the re-rendered form works')
    t.equal(page.url(), `${gw.url}/dashboard`)
    t.same(violations, [])
  })

  t.test('self-registration closed', async (t) => {
    const gw = await gateway({ ALLOW_SELF_REGISTER: 'false' })
    const page = await browser.freshPage()
    await page.goto(`${gw.url}/login`)
    t.equal(await submit(page, 'newcomer'), 403)
    t.equal(await alertText(page), `Error: ${MESSAGES.registrationClosed}`)
    t.equal(await page.getByLabel('Username').inputValue(), 'newcomer')
  })

  t.test('throttled after repeated failures', async (t) => {
    // Its own gateway: throttling is per client address too, and every test here is 127.0.0.1.
    const gw = await gateway({ LOCAL_AUTH: 'password' })
    await addUser(gw, 'mallory')
    for (let i = 0; i < 10; i++) {
      const { response } = await loginLocal(gw.url, 'mallory', { password: `guess ${i}` })
      t.equal(response.status, 401, `failure ${i + 1}`)
    }
    const page = await browser.freshPage()
    await page.goto(`${gw.url}/login`)
    t.equal(await submit(page, 'mallory', PASSWORD), 429, 'even the right password waits')
    t.equal(await alertText(page), `Error: ${MESSAGES.throttled(15 * 60)}`)
    t.match(await alertText(page), /Try again in 15 minutes\./)
  })

  t.test('single sign-on provider unavailable: said inline, the local form still there', async (t) => {
    const nobody = await startUpstream()
    await nobody.close() // a provider address where nothing answers
    const gw = await gateway({
      AUTH_METHOD: 'both',
      OIDC_ISSUER: nobody.url,
      OIDC_CLIENT_ID: 'authgate',
      OIDC_CLIENT_SECRET: 'unused-because-the-provider-is-down',
      OIDC_REDIRECT_URI: 'http://127.0.0.1:9/auth/oidc/callback'
    })
    const page = await browser.freshPage()
    await page.goto(`${gw.url}/login?next=%2Fplanning`)
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/login/oidc'),
      page.getByRole('link', { name: 'Sign in with SSO' }).click()
    ])
    await page.waitForLoadState()
    t.equal(response.status(), 503)
    t.equal(await alertText(page), `Error: ${MESSAGES.providerUnavailable}`)
    t.equal(await page.getByRole('link', { name: 'Sign in with SSO' }).getAttribute('href'), '/login/oidc?next=%2Fplanning', 'the button tries again, keeping next')
    t.equal(await submit(page, 'erin'), 303, 'the local form works meanwhile')
    t.equal(page.url(), `${gw.url}/planning`)
  })

  t.test('an unreachable application gets the 502 page in the same look', async (t) => {
    const gone = await startUpstream()
    await gone.close()
    const gw = await gateway({}, gone.url)
    const page = await browser.freshPage()
    const violations = collectCspViolations(page)
    await page.goto(`${gw.url}/timesheet`)
    t.equal(await submit(page, 'erin'), 303)
    const response = await page.reload()
    t.equal(response?.status(), 502)
    t.match(response?.headers()['content-security-policy'], /default-src 'none'/)
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'The application is not reachable')
    t.match(await alertText(page), /could not get an answer from the application/)
    t.same(await styleOf(page, 'main', ['max-width']), { 'max-width': '400px' }, 'styled like the login page')
    t.equal(await page.getByRole('link', { name: 'Try again' }).getAttribute('href'), '/timesheet')
    t.ok(await browser.screenshot(page, 'error-502'))
    t.same(violations, [])
  })
}
