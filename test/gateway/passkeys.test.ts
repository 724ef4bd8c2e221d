// Passkeys through the real gateway (LOCAL_AUTH=password, LOCAL_MFA=optional), answered by a software
// authenticator (test/support/soft-authenticator.ts): the account page and its refusals, registering,
// removing, signing in with a passkey alone, and every bad input to the JSON endpoints answered with
// a deliberate 4xx JSON error (malformed JSON, an oversized body, no CSRF token, a used or foreign
// challenge, another site's answer, an unknown credential, a second-factor-only passkey), never a 500.
// Adding a passkey asks for the password again (with the options request), counted by the sign-in throttle.
// Chromium does the same for real in test/browser/passkeys.test.ts.
import t from 'tap'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from '../support/http.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { SoftAuthenticator } from '../support/soft-authenticator.js'
import { scrape } from '../support/metrics.js'
import { logCapture } from '../support/log-capture.js'

const upstream = await startUpstream()
t.teardown(upstream.close)
const PASSWORD = 'correct horse battery staple'

/** A browser's view of the gateway at http://localhost:<port> (a relying party in development). */
class Browser {
  cookies: Record<string, string> = {}
  csrf = ''
  constructor (readonly gw: TestGateway, readonly host = `localhost:${new URL(gw.url).port}`) {}
  get origin (): string { return `http://${this.host}` }

  async request (path: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Response> {
    const res = await http(`${this.gw.url}${path}`, { ...options, headers: { host: this.host, cookie: cookieHeader(this.cookies), ...options.headers } })
    this.cookies = { ...this.cookies, ...setCookies(res.headers) }
    return res
  }

  async loginPage (): Promise<Response> {
    const page = await this.request('/login')
    this.csrf = csrfTokenFrom(page.body)
    return page
  }

  async signIn (username: string, password = PASSWORD): Promise<Response> {
    await this.loginPage()
    return await this.request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password, csrf_token: this.csrf, next: '/' }).toString() })
  }

  async json (path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any, headers: Response['headers'] }> {
    const res = await this.request(path, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', 'x-authgate-csrf': this.csrf, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    let parsed: unknown
    try { parsed = JSON.parse(res.body) } catch { parsed = res.body }
    return { status: res.status, body: parsed, headers: res.headers }
  }
}

t.test('LOCAL_MFA=off: no passkeys anywhere', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const browser = new Browser(gw)
  const login = await browser.loginPage()
  t.notMatch(login.body, /passkey|<script/i, 'the login page has no passkey button and no script')
  t.notMatch(login.headers['content-security-policy'], /script-src/)
  t.equal((await browser.request('/_authgate/account/passkeys', { headers: { accept: 'text/html' } })).status, 404)
  for (const path of ['/login/passkey/options', '/login/passkey', '/_authgate/account/passkeys/options', '/_authgate/account/passkeys']) {
    const res = await browser.json(path, {})
    t.equal(res.status, 404, `${path}: 404`)
    t.equal(res.body.error, 'not_found')
  }
})

t.test('LOCAL_MFA=optional, LOCAL_AUTH=password', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const alice = (await gw.users.create({ username: 'alice', passwordHash: await hashPassword(PASSWORD) })).user
  await gw.users.create({ username: 'bob', passwordHash: await hashPassword(PASSWORD) })
  const authenticator = new SoftAuthenticator(new Browser(gw).origin)

  await t.test('the login page offers passkeys at localhost, under a policy allowing the gateway\'s own scripts only', async (t) => {
    const browser = new Browser(gw)
    const page = await browser.loginPage()
    t.match(page.body, /<button class="button secondary" type="button" id="passkey-sign-in" hidden>Sign in with a passkey<\/button>/)
    t.match(page.body, '<script src="/_authgate/static/webauthn.js" defer></script>')
    t.match(page.body, '<script src="/_authgate/static/passkeys.js" defer></script>')
    t.notMatch(page.body, /<script>|<script [^>]*>[^<]/, 'no inline script')
    t.match(page.headers['content-security-policy'], /script-src 'self'; connect-src 'self'/)
    t.notMatch(page.headers['content-security-policy'], /unsafe-inline|unsafe-eval/)
    const library = await browser.request('/_authgate/static/webauthn.js')
    t.equal(library.status, 200)
    t.match(library.headers['content-type'], /javascript/)
    t.match(library.body, /SimpleWebAuthnBrowser/, 'the installed @simplewebauthn/browser bundle')
    const ours = await browser.request('/_authgate/static/passkeys.js')
    t.match(ours.body, /startAuthentication/)
    // Without PUBLIC_URL, only localhost is a relying party: at 127.0.0.1 there is no button.
    const byAddress = await new Browser(gw, new URL(gw.url).host).loginPage()
    t.notMatch(byAddress.body, /passkey/)
    const elsewhere = new Browser(gw, new URL(gw.url).host)
    await elsewhere.loginPage()
    const refused = await elsewhere.json('/login/passkey/options', {})
    t.equal(refused.status, 400)
    t.equal(refused.body.error, 'passkeys_unavailable')
  })

  await t.test('the passkeys page: signed out → login with next; signed in → the page', async (t) => {
    const browser = new Browser(gw)
    const away = await browser.request('/_authgate/account/passkeys', { headers: { accept: 'text/html' } })
    t.equal(away.status, 302)
    t.equal(away.headers.location, '/login?next=%2F_authgate%2Faccount%2Fpasskeys')
    t.equal((await browser.request('/login?next=%2F_authgate%2Faccount%2Fpasskeys')).status, 200)
    await browser.loginPage()
    const signIn = await browser.request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: PASSWORD, csrf_token: browser.csrf, next: '/_authgate/account/passkeys' }).toString() })
    t.equal(signIn.headers.location, '/_authgate/account/passkeys', 'back to the passkeys page after signing in')
    const page = await browser.request('/_authgate/account/passkeys')
    t.equal(page.status, 200)
    t.match(page.body, 'You have no passkeys yet.')
    t.match(page.body, /<form id="passkey-add" hidden/)
    t.match(page.body, 'Use it to sign in without a password')
    t.match(page.body, 'href="/_authgate/account"')
    t.match(page.headers['content-security-policy'], /script-src 'self'/)
  })

  await t.test('the JSON endpoints refuse bad input with a 4xx JSON error', async (t) => {
    const browser = new Browser(gw)
    t.equal((await browser.signIn('alice')).status, 303)
    const cases: Array<[string, string, unknown, Record<string, string>, number, string | RegExp]> = [
      ['no CSRF token', '/_authgate/account/passkeys/options', {}, { 'x-authgate-csrf': '' }, 403, 'csrf'],
      ['a forged CSRF token', '/login/passkey/options', {}, { 'x-authgate-csrf': 'A'.repeat(43) }, 403, 'csrf'],
      ['malformed JSON', '/login/passkey', '{"response": ', {}, 400, 'bad_request'],
      ['JSON that is not an object', '/login/passkey', '[1,2]', {}, 400, 'malformed'],
      ['a body of another type', '/login/passkey', '<response/>', { 'content-type': 'application/xml' }, 415, /./],
      ['an oversized body', '/login/passkey', JSON.stringify({ response: 'x'.repeat(40_000) }), {}, 413, /./],
      ['no response', '/login/passkey', {}, {}, 400, 'malformed'],
      ['a response of the wrong shape', '/login/passkey', { response: { id: 'a', rawId: 'b', type: 'public-key', response: {} } }, {}, 400, 'malformed'],
      ['an unknown credential', '/login/passkey', { response: { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' } } }, {}, 400, 'unknown-credential'],
      ['passwordless not a boolean', '/_authgate/account/passkeys/options', { passwordless: 'yes' }, {}, 400, 'bad_request'],
      ['a registration without a name', '/_authgate/account/passkeys', { response: {} }, {}, 400, 'invalid_name'],
      ['a name of control characters', '/_authgate/account/passkeys', { response: {}, name: '\u0007' }, {}, 400, 'invalid_name'],
      ['a registration that is not one', '/_authgate/account/passkeys', { response: { id: 1 }, name: 'Key' }, {}, 400, 'malformed']
    ]
    for (const [what, path, body, headers, status, error] of cases) {
      const res = await browser.json(path, body, headers)
      t.equal(res.status, status, `${what}: ${status}`)
      t.equal(typeof res.body, 'object', `${what}: a JSON answer`)
      t.match(res.body.error, error, `${what}: ${String(error)}`)
    }
    const signedOut = new Browser(gw)
    await signedOut.loginPage()
    const anonymous = await signedOut.json('/_authgate/account/passkeys/options', {})
    t.equal(anonymous.status, 401, 'registration options need a session')
    t.equal(anonymous.body.error, 'unauthenticated')
  })

  await t.test('register, sign in with the passkey alone, refusals, removal', async (t) => {
    const browser = new Browser(gw)
    await browser.signIn('alice')
    await browser.request('/_authgate/account/passkeys')
    const options = await browser.json('/_authgate/account/passkeys/options', { passwordless: true, password: PASSWORD })
    t.equal(options.status, 200)
    t.equal(options.body.rp.id, 'localhost')
    t.equal(options.body.attestation, 'none')
    const wrongSite = authenticator.register(options.body, { origin: 'http://evil.example' })
    const refusedOrigin = await browser.json('/_authgate/account/passkeys', { response: wrongSite.answer, name: 'Evil' })
    t.equal(refusedOrigin.status, 400)
    t.equal(refusedOrigin.body.error, 'origin')
    const fresh = await browser.json('/_authgate/account/passkeys/options', { passwordless: true, password: PASSWORD })
    const { answer, credential } = authenticator.register(fresh.body)
    const added = await browser.json('/_authgate/account/passkeys', { response: answer, name: 'Laptop <b>' })
    t.equal(added.status, 201)
    t.same(added.body, { id: credential.id, name: 'Laptop <b>', passwordless: true })
    const replayed = await browser.json('/_authgate/account/passkeys', { response: answer, name: 'Again' })
    t.equal(replayed.status, 400, 'the same registration again')
    t.equal(replayed.body.error, 'challenge')
    const page = await browser.request('/_authgate/account/passkeys?added=1')
    t.match(page.body, 'Laptop &lt;b&gt;', 'the name escaped')
    t.match(page.body, 'Sign-in without password')
    t.match(page.body, 'Passkey added.')
    const second = await browser.json('/_authgate/account/passkeys/options', { passwordless: false, password: PASSWORD })
    const key = authenticator.register(second.body)
    t.equal((await browser.json('/_authgate/account/passkeys', { response: key.answer, name: 'Key' })).status, 201)
    t.match((await browser.request('/_authgate/account/passkeys')).body, 'Second factor only')

    // Sign in with the passkey alone, in a browser without a session.
    const fresh2 = new Browser(gw)
    await fresh2.loginPage()
    const signInOptions = await fresh2.json('/login/passkey/options', {})
    t.equal(signInOptions.status, 200)
    t.equal(signInOptions.body.userVerification, 'required')
    const otherSite = await fresh2.json('/login/passkey', { response: authenticator.assert(credential, signInOptions.body, { origin: 'http://localhost:1' }), next: '/x' })
    t.equal(otherSite.status, 400)
    t.equal(otherSite.body.error, 'origin')
    const usedChallenge = await fresh2.json('/login/passkey', { response: authenticator.assert(credential, signInOptions.body), next: '/x' })
    t.equal(usedChallenge.body.error, 'challenge', 'a challenge is used once, even by a refused answer')
    const keyOnly = await fresh2.json('/login/passkey', { response: authenticator.assert(key.credential, (await fresh2.json('/login/passkey/options', {})).body), next: '/x' })
    t.equal(keyOnly.status, 403)
    t.equal(keyOnly.body.error, 'not-passwordless')
    const next = '/reports?week=1'
    const ok = await fresh2.json('/login/passkey', { response: authenticator.assert(credential, (await fresh2.json('/login/passkey/options', {})).body), next })
    t.equal(ok.status, 200)
    t.same(ok.body, { location: next })
    const proxied = await fresh2.request(next)
    t.equal(proxied.status, 200, 'signed in: the upstream answers')
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'alice', 'as alice')
    const unsafeNext = await new Browser(gw).json('/login/passkey', {}, {})
    t.equal(unsafeNext.status, 403, 'no CSRF cookie: refused')
    const metrics = await scrape(`${gw.url}/_authgate/metrics`)
    t.equal(metrics.value('authgate_passkey_events_total', { event: 'sign-in' }), 1)
    t.equal(metrics.value('authgate_passkey_events_total', { event: 'added' }), 2)
    t.equal(metrics.value('authgate_login_failures_total', { method: 'local', reason: 'passkey-origin' }), 1)

    // Removal: a plain form, CSRF-checked; bob cannot remove alice's.
    const bob = new Browser(gw)
    await bob.signIn('bob')
    await bob.request('/_authgate/account/passkeys')
    const notHis = await bob.request('/_authgate/account/passkeys/remove', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: new URLSearchParams({ csrf_token: bob.csrf === '' ? csrfTokenFrom((await bob.request('/_authgate/account/passkeys')).body) : bob.csrf, id: credential.id }).toString() })
    t.equal(notHis.status, 404, 'another user\'s passkey reads as unknown')
    const pageToken = csrfTokenFrom((await browser.request('/_authgate/account/passkeys')).body)
    const noToken = await browser.request('/_authgate/account/passkeys/remove', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: new URLSearchParams({ id: credential.id }).toString() })
    t.equal(noToken.status, 403)
    const removed = await browser.request('/_authgate/account/passkeys/remove', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf_token: pageToken, id: credential.id }).toString() })
    t.equal(removed.status, 303)
    t.equal(removed.headers.location, '/_authgate/account/passkeys?removed=1')
    t.notMatch((await browser.request('/_authgate/account/passkeys')).body, 'Laptop')
    const gone = await fresh2.json('/login/passkey', { response: authenticator.assert(credential, (await fresh2.json('/login/passkey/options', {})).body), next })
    t.equal(gone.status, 400, 'a removed passkey signs in no more')
    t.equal(gone.body.error, 'unknown-credential')
    t.equal((await gw.db.kysely.selectFrom('passkeys').select('user_id').execute()).every((r) => Number(r.user_id) === alice.id), true)
  })

  await t.test('a disabled account, and failures counted by the sign-in throttle', async (t) => {
    /** A user with a passkey for sign-in, registered through the page's endpoints. */
    const withPasskey = async (username: string): Promise<ReturnType<SoftAuthenticator['register']>['credential']> => {
      await gw.users.create({ username, passwordHash: await hashPassword(PASSWORD) })
      const owner = new Browser(gw)
      await owner.signIn(username)
      const { answer, credential } = authenticator.register((await owner.json('/_authgate/account/passkeys/options', { passwordless: true, password: PASSWORD })).body)
      t.equal((await owner.json('/_authgate/account/passkeys', { response: answer, name: 'Phone' })).status, 201)
      return credential
    }
    const browser = new Browser(gw)
    await browser.loginPage()
    const signIn = async (credential: Awaited<ReturnType<typeof withPasskey>>, origin?: string): Promise<{ status: number, body: any }> =>
      await browser.json('/login/passkey', { response: authenticator.assert(credential, (await browser.json('/login/passkey/options', {})).body, origin !== undefined ? { origin } : {}), next: '/' })

    const dave = await withPasskey('dave')
    await gw.users.setActive('dave', false)
    const disabled = await signIn(dave)
    t.equal(disabled.status, 403)
    t.equal(disabled.body.error, 'disabled')
    t.equal(browser.cookies.authgate, undefined, 'no session')

    const carol = await withPasskey('carol')
    for (let i = 0; i < 10; i++) t.equal((await signIn(carol, 'http://evil.example')).body.error, 'origin', `failure ${i + 1}`)
    const throttled = await signIn(carol)
    t.equal(throttled.status, 429, 'then even the right answer waits, as with passwords')
    t.equal(throttled.body.error, 'throttled')
    t.match(throttled.body.message, /Too many failed sign-in attempts/)
  })

  await t.test('the options endpoint is bounded per client address', async (t) => {
    const browser = new Browser(gw)
    await browser.loginPage()
    const statuses: number[] = []
    for (let i = 0; i < 32; i++) statuses.push((await browser.json('/login/passkey/options', {})).status)
    t.ok(statuses.includes(429), 'refused past the limit')
    const last = await browser.json('/login/passkey/options', {})
    t.equal(last.status, 429)
    t.equal(last.body.error, 'too_many_requests')
    t.match(last.headers['retry-after'], /^\d+$/)
  })
})

t.test('adding a passkey asks for the password again', async (t) => {
  const capture = logCapture('info')
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: upstream.url, logger: capture.logger })
  t.teardown(gw.close)
  const erin = (await gw.users.create({ username: 'erin', passwordHash: await hashPassword(PASSWORD) })).user
  const authenticator = new SoftAuthenticator(new Browser(gw).origin)
  const challengesOf = async (): Promise<number> => (await gw.db.kysely.selectFrom('webauthn_challenges').select('challenge').where('user_id', '=', erin.id).execute()).length
  const browser = new Browser(gw)
  t.equal((await browser.signIn('erin')).status, 303)

  const page = await browser.request('/_authgate/account/passkeys')
  t.match(page.body, /<input type="password" id="passkey-password" name="password" autocomplete="current-password" required>/, 'the add form has a password field')

  const forged = await browser.json('/_authgate/account/passkeys/options', { passwordless: true, password: 'wrong password' }, { 'x-authgate-csrf': 'A'.repeat(43) })
  t.equal(forged.status, 403, 'the CSRF check comes first')
  t.equal(forged.body.error, 'csrf')
  t.notOk(capture.lines().some((l) => l.audit === 'reauth-failed'), 'a forged request is not a password attempt')

  for (const [what, body] of [['no password', { passwordless: true }], ['an empty password', { passwordless: true, password: '' }], ['a password that is not a string', { passwordless: true, password: 42 }]] as const) {
    const res = await browser.json('/_authgate/account/passkeys/options', body)
    t.equal(res.status, 400, `${what}: 400`)
    t.equal(res.body.error, 'password_required', what)
    t.equal(res.body.message, 'Type your current password to continue.')
  }

  const wrong = await browser.json('/_authgate/account/passkeys/options', { passwordless: true, password: 'not the password' })
  t.equal(wrong.status, 401, 'a wrong password: 401')
  t.equal(wrong.body.error, 'wrong_password')
  t.match(wrong.body.message, /That password is not right/)
  t.equal(await challengesOf(), 0, 'no challenge stored')
  const audited = capture.lines().filter((l) => l.audit === 'reauth-failed')
  t.equal(audited.length, 1, 'the wrong password audited')
  t.match(audited[0], { user: 'erin', by: 'user', factor: 'passkey', reason: 'wrong-password' })
  t.notOk(capture.lines().some((l) => JSON.stringify(l).includes('not the password')), 'what was typed is never logged')

  const right = await browser.json('/_authgate/account/passkeys/options', { passwordless: true, password: PASSWORD })
  t.equal(right.status, 200, 'the right password: the options')
  t.equal(await challengesOf(), 1, 'one challenge, for erin')
  const { answer } = authenticator.register(right.body)
  const added = await browser.json('/_authgate/account/passkeys', { response: answer, name: 'Laptop' })
  t.equal(added.status, 201, 'the registration itself needs no password: its challenge was issued after the check')
  t.equal(added.body.passwordless, true)

  // The right password forgot erin's earlier failure; ten wrong ones (her browser's device budget), then a wait.
  const again = browser
  t.equal((await again.request('/_authgate/account/passkeys')).status, 200, 'still signed in (the session that added the passkey)')
  for (let i = 0; i < 10; i++) t.equal((await again.json('/_authgate/account/passkeys/options', { password: `guess ${i}` })).status, 401, `wrong password ${i + 1}`)
  const throttled = await again.json('/_authgate/account/passkeys/options', { password: PASSWORD })
  t.equal(throttled.status, 429, 'then even the right password waits, as at sign-in')
  t.equal(throttled.body.error, 'too_many_requests')
  t.match(throttled.body.message, /Too many wrong passwords/)
  t.match(throttled.headers['retry-after'], /^\d+$/)
  t.equal(await challengesOf(), 0, 'no challenge stored while throttled (the one used is gone)')
  t.ok(capture.lines().some((l) => l.audit === 'reauth-failed' && l.reason === 'throttled' && l.user === 'erin'), 'the throttled attempt audited')
  const signIn = await browser.request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'erin', password: PASSWORD, csrf_token: browser.csrf, next: '/' }).toString() })
  t.equal(signIn.status, 429, 'the same throttle as sign-in: a password sign-in from this browser waits too')
})
