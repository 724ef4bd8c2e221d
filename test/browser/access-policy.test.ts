// The access policy's pages in a real Chromium, after real sign-ins at the real OpenID Provider: the
// "Not allowed here" refusal of an account ALLOWED_* keeps out (and its way out through the
// provider's sign-out), the 403 "Not allowed" page ACCESS_RULES shows a signed-in user (and its
// Sign out link), and the login page, unchanged. Each at desktop and phone widths, in the one look
// of the gateway's pages.
import t, { type Test } from 'tap'
import type { Page, Response } from 'playwright-core'
import { HEADER_SIGNING_SECRET, type TestGateway } from '../support/gateway.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { CLIENT_ID, CLIENT_SECRET, POST_LOGOUT_URI, REDIRECT_URI, startSsoGateway } from '../support/sso.js'
import {
  browserForFile, collectCspViolations, DESKTOP, horizontalOverflow, requireChromium, styleOf
} from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'

const LOGO_FILE = new URL('../fixtures/logo.svg', import.meta.url).pathname
/** The narrow phone width the pages must fit without sideways scrolling. */
const PHONE = { width: 375, height: 812 }

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT_URI] }],
    accounts: {
      alice: { preferred_username: 'alice', name: 'Alice', email: 'alice@example.com', email_verified: true, groups: ['staff'] },
      mallory: { preferred_username: 'mallory', name: 'Mallory', email: 'mallory@example.com.evil.test', email_verified: true, groups: [] }
    },
    password: 'pw'
  })
  closeWithFile(op.close)
  const gw: TestGateway = await startSsoGateway(op.issuer, {
    AUTH_METHOD: 'both',
    APP_NAME: 'TimeTracker',
    LOGO_FILE,
    ADMIN_USERNAMES: '',
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    ACCESS_RULES: '/admin=admin',
    OIDC_POST_LOGOUT_REDIRECT_URI: POST_LOGOUT_URI
  }, demo.url.href)
  closeWithFile(gw.close)

  /**
   * A tab whose visits to the addresses registered at the provider (http://localhost:8080, see
   * test/support/sso.ts) reach this gateway, as the reverse proxy in front of it would.
   */
  const tab = async (viewport = DESKTOP): Promise<Page> => {
    const page = await browser.freshPage(viewport)
    await page.route('http://localhost:8080/**', async (route) => {
      const url = new URL(route.request().url())
      await route.fulfill({ status: 302, headers: { location: gw.url + url.pathname + url.search } })
    })
    return page
  }

  /** From the login page's SSO button through the provider's form; resolves with the gateway's answer to the callback. */
  const signInWithSso = async (page: Page, login: string): Promise<Response> => {
    await page.getByRole('link', { name: 'Sign in with SSO' }).click()
    await page.waitForURL((url) => url.origin === op.issuer)
    await page.getByLabel('Login').fill(login)
    await page.getByLabel('Password').fill('pw')
    const [callback] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${gw.url}/auth/oidc/callback?`)),
      page.getByRole('button', { name: 'Sign in' }).click()
    ])
    // The page the callback ends on (its own 403, or where it redirects) has loaded.
    await page.waitForURL((url) => url.origin === gw.url)
    return callback
  }

  /** What makes a page look like the gateway's other pages, measured in the browser. */
  const look = async (page: Page): Promise<Record<string, unknown>> => ({
    stylesheet: await page.evaluate(`(() => {
      const link = document.querySelector('link[rel=stylesheet]')
      return link !== null && link.sheet !== null && link.sheet.cssRules.length > 0 ? link.getAttribute('href') : null
    })()`),
    card: await styleOf(page, 'main.card', ['max-width', 'background-color', 'border-top-left-radius']),
    page: await styleOf(page, 'html', ['background-color', 'font-family']),
    heading: await styleOf(page, 'h1', ['font-size', 'font-weight']),
    brand: await page.locator('header.brand .app-name').textContent(),
    logo: await page.evaluate("(() => { const img = document.querySelector('header.brand img'); return img !== null && img.complete && img.naturalWidth > 0 })()")
  })

  /** Readable at this width: the heading and the message within the card and the screen, no sideways scrolling. */
  const readable = async (t: Test, page: Page, width: number): Promise<void> => {
    t.equal(await horizontalOverflow(page), 0, `no horizontal scrolling at ${width} px`)
    const card = await page.locator('main').boundingBox()
    t.ok(card !== null && card.x >= 0 && card.x + card.width <= width, 'the card fits the screen')
    for (const selector of ['h1', '[role=alert]', 'a.button']) {
      const box = await page.locator(selector).first().boundingBox()
      t.ok(box !== null && box.x >= card!.x && box.x + box.width <= card!.x + card!.width && box.height > 0, `${selector} inside the card`)
    }
    const alert = await styleOf(page, '[role=alert]', ['font-size', 'color', 'background-color'])
    t.equal(alert['font-size'], '16px', 'the message at body size')
    t.not(alert.color, alert['background-color'])
  }

  /** The login page's look at each width (the card loses its rounding and shadow on phones). */
  const loginLook: Record<number, Record<string, unknown>> = {}

  t.test('the login page is unchanged: SSO button and local form, in its look', async (t) => {
    const page = await tab(DESKTOP)
    const violations = collectCspViolations(page)
    const response = await page.goto(`${gw.url}/login?next=%2Freports`)
    t.equal(response?.status(), 200)
    t.equal(await page.title(), 'Sign in · TimeTracker')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in')
    t.equal(await page.getByRole('link', { name: 'Sign in with SSO' }).getAttribute('href'), '/login/oidc?next=%2Freports')
    t.ok(await page.getByRole('textbox', { name: 'Username' }).isVisible(), 'the local form')
    t.same(await styleOf(page, 'button[type=submit]', ['background-color']), { 'background-color': 'rgb(11, 92, 173)' })
    t.equal(await page.getByRole('alert').count(), 0, 'no error on arrival')
    loginLook[DESKTOP.width] = await look(page)
    t.match(loginLook[DESKTOP.width], {
      stylesheet: '/_authgate/static/authgate.css',
      card: { 'max-width': '400px', 'background-color': 'rgb(255, 255, 255)', 'border-top-left-radius': '14px' },
      page: { 'background-color': 'rgb(238, 241, 245)', 'font-family': /system-ui/ },
      heading: { 'font-size': '24px', 'font-weight': '700' },
      brand: 'TimeTracker',
      logo: true
    })
    t.equal(await horizontalOverflow(page), 0)
    t.ok(await browser.screenshot(page, 'policy-login-desktop'))
    await page.setViewportSize(PHONE)
    t.equal(await horizontalOverflow(page), 0, 'no horizontal scrolling at 375 px')
    loginLook[PHONE.width] = await look(page)
    t.match(loginLook[PHONE.width], { card: { 'max-width': '400px', 'border-top-left-radius': '10px' } })
    t.ok(await browser.screenshot(page, 'policy-login-mobile'))
    t.same(violations, [])
  })

  t.test('an account ALLOWED_EMAIL_DOMAINS keeps out: "Not allowed here", and the way out through the provider', async (t) => {
    const page = await tab(DESKTOP)
    const violations = collectCspViolations(page)
    await page.goto(`${gw.url}/reports`)
    t.equal(new URL(page.url()).pathname, '/login')
    const refusal = await signInWithSso(page, 'mallory')
    t.equal(refusal.status(), 403)
    t.match(await refusal.headerValue('content-security-policy'), /default-src 'none'/, 'the pages\' Content-Security-Policy')
    t.equal(await page.title(), 'Not allowed here · TimeTracker')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Not allowed here')
    const message = (await page.getByRole('alert').textContent())?.trim() ?? ''
    t.match(message, /^Error: /, 'announced as an error')
    t.match(message, /may not use this application/)
    t.match(message, /\(Error code: not-allowed\)$/)
    t.notMatch(message, /mallory@/, 'no address echoed')
    const out = page.getByRole('link', { name: 'Sign out at the provider' })
    t.equal(new URL(await out.getAttribute('href') ?? '').origin, op.issuer)
    t.same(await look(page), loginLook[DESKTOP.width], 'the same look as the login page')
    t.same((await browser.context.cookies(gw.url)).filter((c) => /^(__Host-)?authgate$/.test(c.name)), [], 'no session cookie')
    await readable(t, page, DESKTOP.width)
    t.ok(await browser.screenshot(page, 'policy-not-allowed-here-desktop'))
    await page.setViewportSize(PHONE)
    await readable(t, page, PHONE.width)
    t.same(await look(page), loginLook[PHONE.width], 'the same look as the login page on a phone')
    t.ok(await browser.screenshot(page, 'policy-not-allowed-here-mobile'))

    await t.test('"Sign out at the provider" ends the provider session, back to the login page; another account gets in', async (t) => {
      await out.click()
      await page.waitForURL((url) => url.origin === op.issuer)
      await page.getByRole('button', { name: 'Yes, sign me out' }).click()
      await page.waitForURL((url) => url.origin === gw.url && url.pathname === '/login')
      t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in')
      t.equal(await page.getByRole('alert').count(), 0)
      t.equal((await signInWithSso(page, 'alice')).status(), 302, 'the provider asked again; alice is allowed')
      t.match(await page.getByRole('heading', { level: 1 }).textContent(), /^Hello, Alice/)
      t.same(violations, [])
    })
  })

  t.test('a signed-in non-admin opening /admin: "Not allowed", and its Sign out link', async (t) => {
    for (const [viewport, name] of [[DESKTOP, 'desktop'], [PHONE, 'mobile']] as const) {
      await t.test(name, async (t) => {
        const page = await tab(viewport)
        const violations = collectCspViolations(page)
        await page.goto(`${gw.url}/admin/users`)
        t.equal((await signInWithSso(page, 'alice')).status(), 302)
        t.equal(new URL(page.url()).pathname, '/admin/users', 'back where the user was going')
        const response = await page.reload()
        t.equal(response?.status(), 403)
        t.match(response?.headers()['content-security-policy'], /default-src 'none'/)
        t.equal(response?.headers()['cache-control'], 'no-store')
        t.equal(await page.title(), 'Not allowed · TimeTracker')
        t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Not allowed')
        const message = (await page.getByRole('alert').textContent())?.trim() ?? ''
        t.equal(message, 'Error: You are signed in as alice, and this account may not open this page. To use another account, sign out first. If you need this page, ask your administrator.')
        t.same(await look(page), loginLook[viewport.width], 'the same look as the login page')
        await readable(t, page, viewport.width)
        t.ok(await browser.screenshot(page, `policy-forbidden-${name}`))

        await page.getByRole('link', { name: 'Sign out' }).click()
        // An SSO session signs out at the provider too (it asks), then comes back to the login page.
        await page.waitForURL((url) => url.origin === op.issuer)
        await page.getByRole('button', { name: 'Yes, sign me out' }).click()
        await page.waitForURL((url) => url.origin === gw.url && url.pathname === '/login')
        t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in')
        await page.goto(`${gw.url}/admin/users`)
        t.equal(new URL(page.url()).pathname, '/login', 'signed out: /admin asks for a sign-in again')
        t.same(violations, [])
      })
    }
  })
}
