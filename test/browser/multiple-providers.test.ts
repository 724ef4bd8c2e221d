// Several identity providers (OIDC_PROVIDERS=corp,partner) in a real Chromium, with two real OpenID
// Providers: the login page's buttons at desktop and phone widths, alone (AUTH_METHOD=oidc) and above
// the local form (AUTH_METHOD=both); the keyboard through them; a sign-in at the second provider's
// own form that reaches the upstream as that provider's user; and a provider that is down, whose
// button says so while the other one still signs in.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { startGateway, HEADER_SIGNING_SECRET, type TestGateway } from '../support/gateway.js'
import { startOidcProvider, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { POST_LOGOUT_URI, REDIRECT_URI } from '../support/sso.js'
import {
  browserForFile, collectCspViolations, describedBy, DESKTOP, focusedId, horizontalOverflow, MOBILE,
  requireChromium, styleOf
} from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { MESSAGES } from '../../src/pages/login.js'

const LOGO_FILE = new URL('../fixtures/logo.svg', import.meta.url).pathname
const CORP = { id: 'corp', text: 'Sign in with Corp SSO', clientId: 'authgate-corp', clientSecret: 'corp-client-secret', password: 'corp-pw' }
const PARTNER = { id: 'partner', text: 'Sign in with Partner Org', clientId: 'authgate-partner', clientSecret: 'partner-client-secret', password: 'partner-pw' }

interface Box { x: number, y: number, width: number, height: number }

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)

  /** Both providers register the same fixed redirect URI (see tab() below); each has its own client and accounts. */
  const provider = async (who: typeof CORP, accounts: Parameters<typeof startOidcProvider>[0]['accounts']): Promise<OidcProviderFixture> => {
    const op = await startOidcProvider({
      clients: [{ client_id: who.clientId, client_secret: who.clientSecret, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT_URI] }],
      accounts,
      password: who.password
    })
    closeWithFile(op.close)
    return op
  }
  const corp = await provider(CORP, { carla: { preferred_username: 'carla', name: 'Carla Corp', email: 'carla@corp.example', email_verified: true, groups: ['staff'] } })
  const partner = await provider(PARTNER, { pat: { preferred_username: 'pat', name: 'Pat Partner', email: 'pat@partner.example', email_verified: true, groups: ['partners'] } })

  /**
   * A gateway with both providers, corp first. `partnerIssuer`: where partner is expected (a closed
   * port for "down"). Resolves once corp is discovered and partner discovered or failed, so the
   * login page shows what a user would see from then on.
   */
  const gateway = async (authMethod: 'oidc' | 'both', partnerIssuer = partner.issuer): Promise<TestGateway> => {
    const gw = await startGateway({
      AUTH_METHOD: authMethod,
      APP_NAME: 'TimeTracker',
      LOGO_FILE,
      OIDC_PROVIDERS: 'corp,partner',
      OIDC_CORP_ISSUER: corp.issuer,
      OIDC_CORP_CLIENT_ID: CORP.clientId,
      OIDC_CORP_CLIENT_SECRET: CORP.clientSecret,
      OIDC_CORP_BUTTON_TEXT: CORP.text,
      OIDC_PARTNER_ISSUER: partnerIssuer,
      OIDC_PARTNER_CLIENT_ID: PARTNER.clientId,
      OIDC_PARTNER_CLIENT_SECRET: PARTNER.clientSecret,
      OIDC_PARTNER_BUTTON_TEXT: PARTNER.text,
      // Shared by both: the one callback, and the scopes.
      OIDC_REDIRECT_URI: REDIRECT_URI,
      OIDC_SCOPES: 'openid profile email groups'
    }, { upstream: demo.url.href })
    closeWithFile(gw.close)
    const partnerSettled = partnerIssuer === partner.issuer ? (s: string | undefined) => s === 'ok' : (s: string | undefined) => /failed/.test(s ?? '')
    for (let i = 0; i < 200; i++) {
      const { checks } = await fetch(`${gw.url}/_authgate/readyz`).then(async (r) => await r.json() as { checks: Record<string, string> })
      if (checks['oidc:corp'] === 'ok' && partnerSettled(checks['oidc:partner'])) return gw
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error('the providers\' discovery did not settle')
  }

  /**
   * A tab whose visits to the redirect URI registered at the providers (http://localhost:8080, see
   * test/support/sso.ts) reach this gateway, as the reverse proxy in front of it would.
   */
  const tab = async (gw: TestGateway, viewport = DESKTOP): Promise<Page> => {
    const page = await browser.freshPage(viewport)
    await page.route('http://localhost:8080/**', async (route) => {
      const url = new URL(route.request().url())
      await route.fulfill({ status: 302, headers: { location: gw.url + url.pathname + url.search } })
    })
    return page
  }

  const box = async (page: Page, selector: string): Promise<Box> => {
    const b = await page.locator(selector).boundingBox()
    if (b === null) throw new Error(`${selector} is not rendered`)
    return b
  }
  const near = (a: number, b: number): boolean => Math.abs(a - b) < 1

  /**
   * The two buttons as a user sees them at this width: both shown, corp above partner, each as wide
   * as the card's content (the heading's width), apart, and no sideways scrolling.
   */
  const buttonsLaidOut = async (t: Test, page: Page, width: number): Promise<{ corp: Box, partner: Box }> => {
    t.equal(await horizontalOverflow(page), 0, `no horizontal scrolling at ${width} px`)
    t.same(await page.locator('ul.sso-buttons > li > a.button').allTextContents(), [CORP.text, PARTNER.text], 'one button per provider, in OIDC_PROVIDERS order')
    t.ok(await page.getByRole('link', { name: CORP.text }).isVisible(), 'corp\'s button is visible')
    t.ok(await page.getByRole('link', { name: PARTNER.text }).isVisible(), 'partner\'s button is visible')
    const content = await box(page, 'h1')
    const card = await box(page, 'main')
    t.ok(card.x >= 0 && card.x + card.width <= width + 0.5, 'the card fits the screen')
    const corpBox = await box(page, '#sso-corp')
    const partnerBox = await box(page, '#sso-partner')
    for (const [name, b] of [['corp', corpBox], ['partner', partnerBox]] as const) {
      t.ok(near(b.x, content.x) && near(b.width, content.width), `${name}'s button is full-width (${b.width} of ${content.width} px)`)
      t.ok(b.height >= 44, `${name}'s button is a comfortable target (${b.height} px high)`)
    }
    const gap = partnerBox.y - (corpBox.y + corpBox.height)
    t.ok(gap >= 8, `stacked with space between them, not overlapping (${gap} px)`)
    return { corp: corpBox, partner: partnerBox }
  }

  /** Through the provider's own form after its button was clicked; resolves at the gateway's answer to the callback. */
  const signInAt = async (page: Page, gw: TestGateway, op: OidcProviderFixture, login: string, password: string): Promise<number> => {
    await page.waitForURL((url) => url.origin === op.issuer)
    await page.getByLabel('Login').fill(login)
    await page.getByLabel('Password').fill(password)
    const [callback] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${gw.url}/auth/oidc/callback?`)),
      page.getByRole('button', { name: 'Sign in' }).click()
    ])
    // The page the callback redirects to has loaded.
    await page.waitForURL((url) => url.origin === gw.url && url.pathname !== '/auth/oidc/callback')
    return callback.status()
  }

  /** How many authorization requests a provider has received. */
  const authorizations = (op: OidcProviderFixture): number => op.calls.filter((c) => c.path === '/auth').length

  for (const authMethod of ['oidc', 'both'] as const) {
    t.test(`AUTH_METHOD=${authMethod}: two buttons${authMethod === 'both' ? ', the "or" divider and the local form' : ''}`, async (t) => {
      const gw = await gateway(authMethod)
      const suffix = authMethod === 'both' ? '-both' : ''

      await t.test('laid out at desktop and phone widths', async (t) => {
        const page = await tab(gw, DESKTOP)
        const violations = collectCspViolations(page)
        const response = await page.goto(`${gw.url}/reports?week=7`)
        t.equal(response?.status(), 200)
        t.equal(new URL(page.url()).pathname, '/login', 'several providers: the login page shows the buttons rather than redirecting to one')
        t.equal(await page.getByRole('link', { name: CORP.text }).getAttribute('href'), '/login/oidc?provider=corp&next=%2Freports%3Fweek%3D7')
        t.equal(await page.getByRole('link', { name: PARTNER.text }).getAttribute('href'), '/login/oidc?provider=partner&next=%2Freports%3Fweek%3D7')
        t.equal(await page.locator('[data-unavailable], .sso-status').count(), 0, 'both providers are up: no status text')
        for (const viewport of [DESKTOP, MOBILE]) {
          await page.setViewportSize(viewport)
          const { partner: partnerBox } = await buttonsLaidOut(t, page, viewport.width)
          if (authMethod === 'both') {
            t.equal(await page.getByRole('separator', { name: 'or' }).count(), 1, 'the "or" divider')
            const divider = await box(page, '.divider')
            const username = await box(page, '#username')
            const submit = await box(page, 'button[type=submit]')
            t.ok(divider.y >= partnerBox.y + partnerBox.height, 'the divider below the buttons')
            t.ok(username.y >= divider.y + divider.height, 'the local form below the divider')
            t.ok(near(submit.width, partnerBox.width), 'the form\'s Sign in button as wide as the provider buttons')
            t.same(await styleOf(page, '#sso-corp', ['background-color']), { 'background-color': 'rgba(0, 0, 0, 0)' }, 'the provider buttons are secondary to the form\'s')
          } else {
            t.equal(await page.locator('form').count(), 0, 'no local form')
            t.same(await styleOf(page, '#sso-corp', ['background-color']), { 'background-color': 'rgb(11, 92, 173)' }, 'the provider buttons are the primary ones')
          }
          t.ok(await browser.screenshot(page, `login-two-providers${suffix}-${viewport === DESKTOP ? 'desktop' : 'mobile'}`))
        }
        t.same(violations, [], 'nothing refused by the Content-Security-Policy')
      })

      await t.test('Tab moves through the buttons in order, focus visible', async (t) => {
        const page = await tab(gw, DESKTOP)
        await page.goto(`${gw.url}/login`)
        // Start the sequential focus navigation at the heading, as a click there would.
        await page.getByRole('heading', { level: 1 }).click()
        await page.keyboard.press('Tab')
        t.equal(await focusedId(page), 'sso-corp', 'first corp')
        t.same(await styleOf(page, ':focus', ['outline-style', 'outline-width']), { 'outline-style': 'solid', 'outline-width': '3px' }, 'with a focus ring')
        await page.keyboard.press('Tab')
        t.equal(await focusedId(page), 'sso-partner', 'then partner')
        await page.keyboard.press('Tab')
        if (authMethod === 'both') t.equal(await focusedId(page), 'username', 'then the local form')
        else t.not(await focusedId(page), 'sso-corp', 'and on, out of the buttons')
        await page.keyboard.press('Shift+Tab')
        t.equal(await focusedId(page), 'sso-partner', 'Shift+Tab goes back')
      })

      await t.test('the partner button signs in at partner\'s own form and reaches the upstream as pat', async (t) => {
        const page = await tab(gw, MOBILE)
        const violations = collectCspViolations(page)
        const corpBefore = authorizations(corp)
        await page.goto(`${gw.url}/reports?week=7`)
        await page.getByRole('link', { name: PARTNER.text }).click()
        t.equal(await signInAt(page, gw, partner, 'pat', PARTNER.password), 302)
        t.equal(page.url(), `${gw.url}/reports?week=7`, '`next` kept through the provider')
        t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, Pat Partner')
        t.match(await page.getByRole('status').textContent(), /Signature verified/)
        const identity = await page.locator('dl').textContent() ?? ''
        t.match(identity, /Username\s*pat/)
        t.match(identity, /Email\s*pat@partner\.example/)
        t.match(identity, /Groups\s*partners/)
        t.equal(authorizations(corp), corpBefore, 'corp was not asked')
        t.equal((await gw.users.findByUsername('pat'))?.oidcIssuer, partner.issuer, 'the user is partner\'s identity')
        t.equal(await horizontalOverflow(page), 0)
        t.ok(await browser.screenshot(page, `upstream-partner-user${suffix}-mobile`))
        t.same(violations, [])
      })
    })
  }

  t.test('one provider down: its button says so, the other still signs in', async (t) => {
    const nobody = await startUpstream()
    await nobody.close() // an issuer address where nothing answers
    const gw = await gateway('oidc', nobody.url)
    const page = await tab(gw, MOBILE)
    const violations = collectCspViolations(page)
    await page.goto(`${gw.url}/login?next=%2Fplanning`)
    t.equal(await page.getByRole('link', { name: CORP.text }).getAttribute('data-unavailable'), null, 'corp is fine')
    t.equal(await page.getByRole('link', { name: PARTNER.text }).getAttribute('data-unavailable'), '', 'partner is marked unavailable')
    const status = page.locator('#sso-partner-status')
    t.equal((await status.textContent())?.trim(), MESSAGES.buttonUnavailable)
    t.ok(await status.isVisible(), 'the status is shown')
    t.equal(await describedBy(page, '#sso-partner'), MESSAGES.buttonUnavailable, 'and read out with the button')
    for (const viewport of [MOBILE, DESKTOP]) {
      await page.setViewportSize(viewport)
      const { partner: partnerBox } = await buttonsLaidOut(t, page, viewport.width)
      const statusBox = await box(page, '#sso-partner-status')
      const content = await box(page, 'h1')
      t.ok(statusBox.y >= partnerBox.y + partnerBox.height, 'the status under partner\'s button')
      t.ok(statusBox.x >= content.x - 0.5 && statusBox.x + statusBox.width <= content.x + content.width + 0.5, 'within the card')
      const style = await styleOf(page, '#sso-partner-status', ['font-size', 'color', 'text-align'])
      t.equal(style['text-align'], 'center')
      t.ok(parseFloat(style['font-size']!) >= 14, `readable (${style['font-size']!})`)
      t.ok(await browser.screenshot(page, `login-two-providers-one-down-${viewport === MOBILE ? 'mobile' : 'desktop'}`))
    }

    await t.test('a click on the unavailable button retries and says the provider cannot be reached', async (t) => {
      const [response] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/login/oidc'),
        page.getByRole('link', { name: PARTNER.text }).click()
      ])
      await page.waitForLoadState()
      t.equal(response.status(), 503)
      t.equal((await page.getByRole('alert').textContent())?.trim(), `Error: ${MESSAGES.providerUnavailable}`)
      t.equal(await page.getByRole('link', { name: CORP.text }).getAttribute('href'), '/login/oidc?provider=corp&next=%2Fplanning', 'both buttons still there, keeping next')
    })

    await t.test('corp signs in meanwhile', async (t) => {
      await page.getByRole('link', { name: CORP.text }).click()
      t.equal(await signInAt(page, gw, corp, 'carla', CORP.password), 302)
      t.equal(page.url(), `${gw.url}/planning`)
      t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, Carla Corp')
      t.equal((await gw.users.findByUsername('carla'))?.oidcIssuer, corp.issuer)
      t.same(violations, [])
    })
  })
}
