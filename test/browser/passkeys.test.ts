// Passkeys in a real Chromium, with the DevTools virtual authenticator (CDP `WebAuthn.*`: a CTAP2
// platform authenticator that keeps resident keys and verifies the user): sign in with the
// password, add a passkey on /_authgate/account/passkeys (a wrong password typed on its form refused
// first), sign out, sign in with the passkey alone
// and reach the (verifying) demo upstream; a passkey not chosen for sign-in refused there; removal.
// The gateway runs without PUBLIC_URL in development, opened as http://localhost:<port>: the relying
// party is then localhost (src/auth/passkeys/relying-party.ts). Screenshots at desktop and phone widths.
import t from 'tap'
import type { CDPSession, Page } from 'playwright-core'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { browserForFile, collectCspViolations, DESKTOP, horizontalOverflow, MOBILE, requireChromium } from '../support/browser.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MESSAGES } from '../../src/pages/login.js'

const PASSWORD = 'correct horse battery staple'

interface VirtualCredential { credentialId: string, isResidentCredential: boolean, rpId?: string, privateKey: string, userHandle?: string, signCount: number }

if (requireChromium(t)) {
  const { browser, closeWithFile } = await browserForFile(t)
  const demo = await startDemoUpstream(HEADER_SIGNING_SECRET)
  closeWithFile(demo.close)
  const gw = await startGateway({ APP_NAME: 'TimeTracker', LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: demo.url.href })
  closeWithFile(gw.close)
  await gw.users.create({ username: 'alice', passwordHash: await hashPassword(PASSWORD) })
  // localhost, not 127.0.0.1: an IP address is never a WebAuthn relying-party id.
  const base = `http://localhost:${new URL(gw.url).port}`

  const addAuthenticator = async (cdp: CDPSession): Promise<string> => {
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true }
    })
    return authenticatorId
  }
  const credentialsOf = async (cdp: CDPSession, authenticatorId: string): Promise<VirtualCredential[]> =>
    (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials as VirtualCredential[]
  const addPasskey = async (page: Page, name: string, passwordless: boolean): Promise<void> => {
    // From the page itself (not its ?added=1 form, which the wait below would match at once).
    if (page.url() !== `${base}/_authgate/account/passkeys`) await page.goto(`${base}/_authgate/account/passkeys`)
    await page.getByLabel('Name').fill(name)
    await page.getByLabel('Use it to sign in without a password').setChecked(passwordless)
    await page.getByLabel('Your current password').fill(PASSWORD)
    await Promise.all([page.waitForURL(`${base}/_authgate/account/passkeys?added=1`), page.getByRole('button', { name: 'Add a passkey' }).click()])
  }
  const signOut = async (page: Page): Promise<void> => {
    await page.goto(`${base}/`)
    await page.getByRole('link', { name: 'Sign out' }).click()
    await page.waitForURL(`${base}/login?signed_out=1`)
  }
  const alertText = async (page: Page): Promise<string> => (await page.locator('#passkey-error').textContent() ?? '').trim()

  t.test('add a passkey, sign in with it alone, a second-factor-only one refused, removal', async (t) => {
    const page = await browser.freshPage(DESKTOP)
    const violations = collectCspViolations(page)
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('WebAuthn.enable', { enableUI: false })
    const first = await addAuthenticator(cdp)

    // Sign in with the password, on the way to the passkeys page.
    await page.goto(`${base}/_authgate/account/passkeys`)
    t.equal(new URL(page.url()).searchParams.get('next'), '/_authgate/account/passkeys')
    await page.getByLabel('Username').fill('alice')
    await page.getByLabel('Password').fill(PASSWORD)
    await Promise.all([page.waitForURL(`${base}/_authgate/account/passkeys`), page.getByRole('button', { name: 'Sign in', exact: true }).click()])
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Passkeys')
    t.ok(await page.locator('#passkey-add').isVisible(), 'the script revealed the add form')

    // A wrong password: refused before the authenticator is asked, the page says why.
    await page.getByLabel('Name').fill('Laptop')
    await page.getByLabel('Use it to sign in without a password').setChecked(true)
    await page.getByLabel('Your current password').fill('not the password')
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await page.locator('#passkey-error:not([hidden])').waitFor()
    t.match(await alertText(page), 'That password is not right.')
    t.equal((await credentialsOf(cdp, first)).length, 0, 'the authenticator was not asked')
    t.equal(await page.locator('#passkey-password').getAttribute('type'), 'password')
    t.equal(await page.locator('#passkey-password').getAttribute('autocomplete'), 'current-password')

    await addPasskey(page, 'Laptop', true)
    t.match(await page.getByRole('status').textContent(), 'Passkey added.')
    t.match(await page.locator('.passkeys').textContent(), /Laptop[\s\S]*Sign-in without password[\s\S]*Never/)
    const held = await credentialsOf(cdp, first)
    t.equal(held.length, 1, 'the authenticator holds the passkey')
    t.equal(held[0]!.isResidentCredential, true, 'a discoverable credential: it can sign in without a username')
    t.equal(held[0]!.rpId, 'localhost')
    t.equal((await gw.db.kysely.selectFrom('passkeys').selectAll().execute()).length, 1)

    // A second authenticator for a second-factor-only passkey (the first one is excluded from
    // registering twice, as it should be); the first is set aside meanwhile, its key kept.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: first })
    const second = await addAuthenticator(cdp)
    await addPasskey(page, 'Security key', false)
    t.match(await page.locator('.passkeys').textContent(), /Security key[\s\S]*Second factor only/)
    await page.setViewportSize(DESKTOP)
    t.ok(await browser.screenshot(page, 'passkeys-desktop'))
    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0, 'no horizontal scrolling on a phone')
    t.ok(await browser.screenshot(page, 'passkeys-mobile'))
    await page.setViewportSize(DESKTOP)

    await signOut(page)
    const button = page.getByRole('button', { name: 'Sign in with a passkey' })
    t.ok(await button.isVisible(), 'the login page offers the passkey')
    t.ok(await browser.screenshot(page, 'login-passkey-desktop'))
    await page.setViewportSize(MOBILE)
    t.equal(await horizontalOverflow(page), 0)
    t.ok(await browser.screenshot(page, 'login-passkey-mobile'))
    await page.setViewportSize(DESKTOP)

    // Only the second-factor passkey at hand: refused, the page says why, no session.
    await button.click()
    await page.locator('#passkey-error:not([hidden])').waitFor()
    t.match(await alertText(page), /second factor only/)
    t.equal(new URL(page.url()).pathname, '/login', 'still on the login page')
    t.equal((await page.context().cookies()).some((c) => c.name === 'authgate'), false, 'no session cookie')

    // The passkey chosen for sign-in, alone: the upstream, as alice, its signature verified.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: second })
    const third = await addAuthenticator(cdp)
    await cdp.send('WebAuthn.addCredential', { authenticatorId: third, credential: held[0]! })
    await page.goto(`${base}/login?next=${encodeURIComponent('/projects/7')}`)
    await Promise.all([page.waitForURL(`${base}/projects/7`), page.getByRole('button', { name: 'Sign in with a passkey' }).click()])
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Hello, alice')
    t.match(await page.getByRole('status').textContent(), /Signature verified/)
    const laptop = (await gw.db.kysely.selectFrom('passkeys').selectAll().where('name', '=', 'Laptop').executeTakeFirst())!
    t.ok(laptop.last_used_at !== null, 'its last use recorded')
    t.ok(Number(laptop.counter) >= 1, 'the counter moved')

    // Removal, from the page: it signs in no more.
    await page.goto(`${base}/_authgate/account/passkeys`)
    await Promise.all([page.waitForURL(`${base}/_authgate/account/passkeys?removed=1`), page.getByRole('button', { name: 'Remove Laptop' }).click()])
    t.match(await page.getByRole('status').textContent(), 'Passkey removed.')
    t.notMatch(await page.locator('main').textContent(), /Laptop/)
    await signOut(page)
    t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await page.locator('#passkey-error:not([hidden])').waitFor()
    t.match(await alertText(page), /not registered here/)
    t.same(violations, [], 'nothing refused by the Content-Security-Policy')
  })
}
