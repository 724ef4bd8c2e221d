// A passkey as the second factor in a real Chromium, with the DevTools virtual authenticator (CDP
// `WebAuthn.*`, as test/browser/passkeys.test.ts): sign in with the password, add a second-factor-only
// passkey on /_authgate/account/passkeys, sign out, sign in with the password again, and on the second
// step click "Use a passkey instead": the (verifying) demo upstream, as alice, at the first step's next.
// The gateway runs without PUBLIC_URL, opened as http://localhost:<port> (the relying party localhost).
// Screenshots mfa-second-step-passkey-{desktop,mobile}.png in test/artifacts/.
import t from 'tap'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { browserForFile, collectCspViolations, DESKTOP, horizontalOverflow, MOBILE, requireChromium } from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { hashPassword } from '../../src/auth/local/password.js'

const PASSWORD = 'correct horse battery staple'

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)
  const gw = await startGateway({ APP_NAME: 'TimeTracker', LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: demo.url.href })
  closeWithFile(gw.close)
  await gw.users.create({ username: 'alice', passwordHash: await hashPassword(PASSWORD) })
  // localhost, not 127.0.0.1: an IP address is never a WebAuthn relying-party id.
  const base = `http://localhost:${new URL(gw.url).port}`

  t.test('password, then "Use a passkey instead" on the second step, to the upstream', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('WebAuthn.enable', { enableUI: false })
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true }
    })
    const signInWithPassword = async (next: string): Promise<void> => {
      await page.goto(`${base}/login?next=${encodeURIComponent(next)}`)
      await page.getByLabel('Username').fill('alice')
      await page.getByLabel('Password').fill(PASSWORD)
      await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Sign in', exact: true }).click()])
      await page.waitForLoadState()
    }

    // No factor yet: the password alone, on to the passkeys page; a second-factor-only passkey.
    await signInWithPassword('/_authgate/account/passkeys')
    await page.waitForURL(`${base}/_authgate/account/passkeys`)
    await page.getByLabel('Name').fill('Security key')
    await page.getByLabel('Use it to sign in without a password').setChecked(false)
    await page.getByLabel('Your current password').fill(PASSWORD)
    await Promise.all([page.waitForURL(`${base}/_authgate/account/passkeys?added=1`), page.getByRole('button', { name: 'Add a passkey' }).click()])
    t.match(await page.locator('.passkeys').textContent(), /Security key[\s\S]*Second factor only/)
    await page.goto(`${base}/_authgate/account`)
    t.equal(await page.getAttribute('[data-passkeys]', 'data-passkeys'), '1', 'the account page counts it')

    await page.goto(`${base}/`)
    await page.getByRole('link', { name: 'Sign out' }).click()
    await page.waitForURL(`${base}/login?signed_out=1`)

    await signInWithPassword('/projects/7')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Two-step verification')
    t.equal(new URL(page.url()).pathname, '/login', 'still at the gateway: no session yet')
    t.equal((await page.context().cookies()).some((c) => c.name === 'authgate'), false, 'no session cookie')
    const button = page.getByRole('button', { name: 'Use a passkey instead' })
    await button.waitFor({ state: 'visible' })
    t.ok(await button.isVisible(), 'the script revealed the passkey button')
    t.equal(await page.getByLabel('Code').count(), 0, 'no code field: no authenticator app, so no code could be right')
    t.equal((await page.locator('p.lead').textContent())?.trim(), 'Use your passkey to finish signing in.')
    await page.setViewportSize(DESKTOP)
    t.equal(await horizontalOverflow(page), 0, 'no horizontal scrolling at desktop width')
    t.ok(await browser.screenshot(page, 'mfa-second-step-passkey-desktop'))
    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0, 'no horizontal scrolling on a phone')
    t.ok(await browser.screenshot(page, 'mfa-second-step-passkey-mobile'))
    await page.setViewportSize(DESKTOP)

    await Promise.all([page.waitForURL(`${base}/projects/7`), button.click()])
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, alice', 'the upstream, as alice')
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    const key = (await gw.db.kysely.selectFrom('passkeys').selectAll().executeTakeFirst())!
    t.ok(key.last_used_at !== null, 'its last use recorded')
    t.same(violations, [], 'nothing refused by the Content-Security-Policy')
  })
}
