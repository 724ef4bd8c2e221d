// The second factor in a real Chromium (LOCAL_AUTH=password, LOCAL_MFA=optional): the account page,
// adding an authenticator app (the QR code the gateway draws, under the pages' CSP), the recovery
// codes shown once, and the second sign-in step, at desktop and phone widths. Screenshots
// mfa-*.png in test/artifacts/. Codes come from test/support/totp.ts (node:crypto from the RFC).
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { TestClock } from '../support/clock.js'
import { totpCode } from '../support/totp.js'
import { browserForFile, collectCspViolations, DESKTOP, focusedId, horizontalOverflow, MOBILE, requireChromium } from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MFA_MESSAGES } from '../../src/pages/second-factor.js'

const LOGO_FILE = new URL('../fixtures/logo.svg', import.meta.url).pathname
const PASSWORD = 'correct horse battery staple'

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ APP_NAME: 'TimeTracker', LOGO_FILE, LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: demo.url.href, clock })
  closeWithFile(gw.close)
  await gw.users.create({ username: 'alice', passwordHash: await hashPassword(PASSWORD) })

  const signIn = async (page: Page, next = '/'): Promise<void> => {
    await page.goto(`${gw.url}/login?next=${encodeURIComponent(next)}`)
    await page.getByLabel('Username').fill('alice')
    await page.getByLabel('Password').fill(PASSWORD)
    await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Sign in' }).click()])
    await page.waitForLoadState()
  }
  /** Both widths: no horizontal scrolling, a screenshot each. */
  const shoot = async (t: Test, page: Page, name: string): Promise<void> => {
    await page.setViewportSize(DESKTOP)
    t.equal(await horizontalOverflow(page), 0, `${name}: no horizontal scrolling at desktop width`)
    t.ok(await browser.screenshot(page, `${name}-desktop`))
    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0, `${name}: no horizontal scrolling on a phone`)
    t.ok(await browser.screenshot(page, `${name}-mobile`))
    await page.setViewportSize(DESKTOP)
  }

  let secret = ''
  t.test('the account page, the QR code and the recovery codes, under the CSP', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    await signIn(page)
    const account = await page.goto(`${gw.url}/_authgate/account`)
    t.equal(account?.status(), 200)
    t.equal(await page.title(), 'Your account · TimeTracker')
    t.ok(await page.getByRole('link', { name: 'Add a passkey' }).isVisible(), 'the link to the passkeys page (no passkey yet)')
    t.ok(await page.getByRole('button', { name: 'Sign out everywhere' }).isVisible())
    await shoot(t, page, 'mfa-account')

    await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Add an authenticator app' }).click()])
    await page.waitForLoadState()
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Add an authenticator app')
    t.equal(await page.evaluate("(() => { const img = document.querySelector('img.qr'); return img.complete && img.naturalWidth > 0 })()"), true, 'the QR code (a data: image the gateway drew) rendered')
    secret = await page.getAttribute('[data-totp-secret]', 'data-totp-secret') ?? ''
    t.match(secret, /^[A-Z2-7]{32}$/)
    t.equal(await focusedId(page), 'code', 'the code field has focus')
    await shoot(t, page, 'mfa-totp-qr')

    await page.getByLabel('Code from the app').fill(totpCode(secret, clock.now()))
    await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Turn on' }).click()])
    await page.waitForLoadState()
    t.equal(await page.locator('[data-recovery-code]').count(), 10)
    await shoot(t, page, 'mfa-recovery-codes')
    await page.getByRole('link', { name: 'I have saved them' }).click()
    await page.waitForLoadState()
    t.match(await page.locator('[data-factor="totp"]').textContent(), 'On')
    await shoot(t, page, 'mfa-account-enrolled')
    t.same(violations, [], 'nothing refused by the CSP')
  })

  t.test('the second step: a wrong code says so, the right one goes on to next', async (t) => {
    clock.advance(30_000)
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    await signIn(page, '/?from=mfa')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Two-step verification')
    t.equal(new URL(page.url()).pathname, '/login', 'still at the gateway: no session yet')
    t.equal(await focusedId(page), 'code')
    await shoot(t, page, 'mfa-second-step')

    await page.getByLabel('Code').fill('000000')
    await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Verify' }).click()])
    await page.waitForLoadState()
    t.equal((await page.getByRole('alert').textContent())?.replace('Error: ', '').trim(), MFA_MESSAGES.wrongCode)
    await shoot(t, page, 'mfa-second-step-wrong-code')

    await page.getByLabel('Code').fill(totpCode(secret, clock.now()))
    await Promise.all([page.waitForURL((u) => u.pathname === '/' && u.search === '?from=mfa'), page.getByRole('button', { name: 'Verify' }).click()])
    t.match(await page.content(), 'alice', 'the demo upstream shows the signed-in user')
    t.same(violations, [], 'nothing refused by the CSP')
  })
}
