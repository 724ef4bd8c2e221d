// Passkeys as a second factor through the real gateway (LOCAL_AUTH=password), answered by the software
// authenticator (test/support/soft-authenticator.ts), at http://localhost:<port> (a relying party in
// development): the second step's passkey button and its CSP, POST /login/mfa/passkey/options and
// POST /login/mfa/passkey (the token used once, forged or expired tokens, CSRF, another user's passkey,
// the throttle), LOCAL_MFA=off, and LOCAL_MFA=required: adding a passkey frees a held session (HTTP and
// WebSocket), removing the last one holds it again, removing TOTP while a passkey remains does not.
import t from 'tap'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { TestClock } from '../support/clock.js'
import { totpCode } from '../support/totp.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from '../support/http.js'
import { mfaTokenFrom, recoveryCodesFrom, secretFrom, HTML, PASSWORD } from '../support/second-factor.js'
import { SoftAuthenticator, type SoftCredential } from '../support/soft-authenticator.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MFA_MESSAGES } from '../../src/pages/second-factor.js'
import { escapeHtml } from '../../src/pages/html.js'
import { scrape } from '../support/metrics.js'

/** A browser at http://localhost:<port>: its cookies, forms and JSON requests (passkeys.js's). */
class Browser {
  cookies: Record<string, string> = {}
  csrf = ''
  constructor (readonly gw: TestGateway) {}
  get host (): string { return `localhost:${new URL(this.gw.url).port}` }

  async request (path: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Response> {
    const res = await http(`${this.gw.url}${path}`, { ...options, headers: { host: this.host, accept: HTML, cookie: cookieHeader(this.cookies), ...options.headers } })
    this.cookies = { ...this.cookies, ...setCookies(res.headers) }
    const token = /name="csrf_token" value="([^"]+)"/.exec(res.body)?.[1]
    if (token !== undefined) this.csrf = token
    return res
  }

  async form (path: string, fields: Record<string, string>): Promise<Response> {
    return await this.request(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
  }

  /** The password step (from the login page): a 303 when signed in, the second step's page otherwise. */
  async signIn (username: string, next = '/'): Promise<Response> {
    const page = await this.request('/login?next=' + encodeURIComponent(next))
    return await this.form('/login', { username, password: PASSWORD, csrf_token: csrfTokenFrom(page.body), next })
  }

  async json (path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any, headers: Response['headers'] }> {
    const res = await this.request(path, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', 'x-authgate-csrf': this.csrf, ...headers }, body: JSON.stringify(body) })
    let parsed: unknown
    try { parsed = JSON.parse(res.body) } catch { parsed = res.body }
    return { status: res.status, body: parsed, headers: res.headers }
  }

  /** Register a passkey through the passkeys page (signed in). */
  async addPasskey (authenticator: SoftAuthenticator, name: string, passwordless = false): Promise<{ status: number, credential: SoftCredential, headers: Response['headers'] }> {
    await this.request('/_authgate/account/passkeys')
    const options = await this.json('/_authgate/account/passkeys/options', { passwordless, password: PASSWORD })
    if (options.status !== 200) throw new Error(`registration options: ${options.status}`)
    const { answer, credential } = authenticator.register(options.body)
    const added = await this.json('/_authgate/account/passkeys', { response: answer, name })
    return { status: added.status, credential, headers: added.headers }
  }

  /** The second step answered with a passkey: options for the step's token, then the answer. */
  async passkeyStep (authenticator: SoftAuthenticator, credential: SoftCredential, mfaToken: string): Promise<{ status: number, body: any }> {
    const options = await this.json('/login/mfa/passkey/options', { mfa_token: mfaToken })
    if (options.status !== 200) return options
    return await this.json('/login/mfa/passkey', { mfa_token: mfaToken, response: authenticator.assert(credential, options.body) })
  }
}

const addUser = async (gw: TestGateway, username: string): Promise<void> => {
  await gw.users.create({ username, passwordHash: await hashPassword(PASSWORD) })
}

const upstream = await startUpstream()
t.teardown(upstream.close)

t.test('LOCAL_MFA=optional: a passkey as the only second factor', async (t) => {
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: upstream.url, clock })
  t.teardown(gw.close)
  await addUser(gw, 'alice')
  await addUser(gw, 'bob')
  await addUser(gw, 'carol')
  const authenticator = new SoftAuthenticator(`http://localhost:${new URL(gw.url).port}`)

  // alice: one second-factor-only passkey; bob: one too; carol: none.
  const aliceSetup = new Browser(gw)
  t.equal((await aliceSetup.signIn('alice')).status, 303, 'no factor yet: the password signs in')
  const aliceKey = await aliceSetup.addPasskey(authenticator, 'Key')
  t.equal(aliceKey.status, 201)
  t.ok(setCookies(aliceKey.headers).authgate, 'adding a passkey replaces the session')
  const bobSetup = new Browser(gw)
  await bobSetup.signIn('bob')
  const bobKey = await bobSetup.addPasskey(authenticator, 'Bob key')
  t.equal(bobKey.status, 201)

  await t.test('the account page counts the passkey', async (t) => {
    const page = await aliceSetup.request('/_authgate/account')
    t.equal(page.status, 200)
    t.match(page.body, 'data-passkeys="1"')
  })

  let usedToken = ''
  await t.test('the second step offers the passkey, then signs in with it', async (t) => {
    const browser = new Browser(gw)
    const first = await browser.signIn('alice', '/reports?week=3')
    t.equal(first.status, 200, 'the password answers the second step')
    t.equal(setCookies(first.headers).authgate, undefined, 'no session cookie yet')
    t.match(first.body, /<button class="button secondary" type="button" id="passkey-second-factor" data-options-url="\/login\/mfa\/passkey\/options" data-verify-url="\/login\/mfa\/passkey" hidden>Use a passkey instead<\/button>/)
    t.match(first.body, '<script src="/_authgate/static/webauthn.js" defer></script>')
    t.match(first.body, '<script src="/_authgate/static/passkeys.js" defer></script>')
    t.notMatch(first.body, /<script>|<script [^>]*>[^<]/, 'no inline script')
    t.match(first.headers['content-security-policy'], /script-src 'self'/)
    t.notMatch(first.headers['content-security-policy'], /unsafe-inline|unsafe-eval/)
    t.match(first.body, 'Use your passkey to finish signing in.')
    t.notMatch(first.body, 'name="code"', 'no code field: without an authenticator app no code could be right')
    const mfaToken = mfaTokenFrom(first.body)
    t.match(mfaToken, /^[\w-]{43}$/)

    const options = await browser.json('/login/mfa/passkey/options', { mfa_token: mfaToken })
    t.equal(options.status, 200)
    t.equal(options.headers['cache-control'], 'no-store')
    t.same(options.body.allowCredentials.map((c: { id: string }) => c.id), [aliceKey.credential.id], 'alice\'s passkey only')
    t.equal(options.body.rpId, 'localhost')

    const ok = await browser.json('/login/mfa/passkey', { mfa_token: mfaToken, response: authenticator.assert(aliceKey.credential, options.body) })
    t.equal(ok.status, 200)
    t.same(ok.body, { location: '/reports?week=3' }, 'next as the first step had it')
    t.ok(browser.cookies.authgate, 'a session cookie')
    const proxied = await browser.request('/reports?week=3', { headers: { accept: 'application/json' } })
    t.equal(proxied.status, 200, 'the upstream answers')
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'alice', 'with alice\'s identity headers')
    const metrics = await scrape(`${gw.url}/_authgate/metrics`)
    t.equal(metrics.value('authgate_local_sign_ins_by_factor_total', { factor: 'passkey' }), 1, 'a session that passed the passkey factor')

    const again = await browser.passkeyStep(authenticator, aliceKey.credential, mfaToken)
    t.equal(again.status, 400, 'the step token was used')
    t.equal(again.body.error, 'step_expired')
    usedToken = mfaToken
  })

  await t.test('a user without passkeys: no button, no script', async (t) => {
    const browser = new Browser(gw)
    const first = await browser.signIn('carol')
    t.equal(first.status, 303, 'no factor: the password signs in')
    // carol enrols an authenticator app: the second step, without a passkey button.
    const begun = await browser.form('/_authgate/account/totp', { csrf_token: browser.csrf, password: PASSWORD })
    const secret = secretFrom(begun.body)
    t.equal((await browser.form('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now()) })).status, 200)
    const step = await new Browser(gw).signIn('carol')
    t.equal(step.status, 200)
    t.match(step.body, 'action="/login/mfa"')
    t.notMatch(step.body, /passkey|<script/i)
    t.notMatch(step.headers['content-security-policy'], /script-src/)
    const other = new Browser(gw)
    const carolStep = await other.signIn('carol')
    const options = await other.json('/login/mfa/passkey/options', { mfa_token: mfaTokenFrom(carolStep.body) })
    t.equal(options.status, 400)
    t.equal(options.body.error, 'no_passkey')
  })

  await t.test('forged, used and expired tokens, a bad CSRF header', async (t) => {
    const browser = new Browser(gw)
    const first = await browser.signIn('alice')
    const mfaToken = mfaTokenFrom(first.body)
    for (const [what, token] of [['forged', 'A'.repeat(43)], ['used', usedToken], ['not a string', 42], ['absent', undefined]] as const) {
      const options = await browser.json('/login/mfa/passkey/options', { mfa_token: token })
      t.equal(options.status, 400, `${what}: options refused`)
      t.equal(options.body.error, 'step_expired')
      const answer = await browser.json('/login/mfa/passkey', { mfa_token: token, response: {} })
      t.equal(answer.status, 400, `${what}: answer refused`)
      t.equal(answer.body.error, 'step_expired')
    }
    const noCsrf = await browser.json('/login/mfa/passkey/options', { mfa_token: mfaToken }, { 'x-authgate-csrf': 'A'.repeat(43) })
    t.equal(noCsrf.status, 403)
    t.equal(noCsrf.body.error, 'csrf')
    const options = await browser.json('/login/mfa/passkey/options', { mfa_token: mfaToken })
    const wrongCsrf = await browser.json('/login/mfa/passkey', { mfa_token: mfaToken, response: authenticator.assert(aliceKey.credential, options.body) }, { 'x-authgate-csrf': '' })
    t.equal(wrongCsrf.status, 403)
    t.equal(wrongCsrf.body.error, 'csrf')
    t.equal(setCookies((await browser.request('/x', { headers: { accept: 'application/json' } })).headers).authgate, undefined)
    clock.advance(5 * 60_000 + 1000)
    const expired = await browser.passkeyStep(authenticator, aliceKey.credential, mfaToken)
    t.equal(expired.status, 400, 'expired after 5 minutes')
    t.equal(expired.body.error, 'step_expired')
    t.equal(browser.cookies.authgate, undefined, 'no session')
  })

  await t.test('another user\'s passkey is refused and counted by the throttle', async (t) => {
    const browser = new Browser(gw)
    const first = await browser.signIn('alice')
    const mfaToken = mfaTokenFrom(first.body)
    let last: { status: number, body: any, headers?: Response['headers'] } | undefined
    let tries = 0
    for (; tries < 15; tries++) {
      const options = await browser.json('/login/mfa/passkey/options', { mfa_token: mfaToken })
      last = await browser.json('/login/mfa/passkey', { mfa_token: mfaToken, response: authenticator.assert(bobKey.credential, { ...options.body, rpId: 'localhost' }) })
      if (last.status === 429) break
      t.ok([401, 403].includes(last.status), `bob's passkey refused for alice (${last.status} ${String(last.body.error)})`)
    }
    t.equal(last?.status, 429, `throttled after ${tries} refusals`)
    t.ok(tries <= 10, 'within the per-username limit')
    t.equal(last?.body.error, 'throttled')
    t.match(String(last?.headers?.['retry-after']), /^\d+$/)
    const options = await browser.json('/login/mfa/passkey/options', { mfa_token: mfaToken })
    const right = await browser.json('/login/mfa/passkey', { mfa_token: mfaToken, response: authenticator.assert(aliceKey.credential, options.body) })
    t.equal(right.status, 429, 'even alice\'s own passkey waits')
    t.equal(browser.cookies.authgate, undefined, 'no session')
  })
})

t.test('LOCAL_MFA=off: the passkey second step is not there', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const browser = new Browser(gw)
  await browser.request('/login')
  for (const path of ['/login/mfa/passkey/options', '/login/mfa/passkey']) {
    const res = await browser.json(path, { mfa_token: 'A'.repeat(43) })
    t.equal(res.status, 404, `${path}: 404`)
    t.equal(res.body.error, 'not_found')
  }
})

t.test('LOCAL_MFA=required: a passkey frees a held session, removing the last factor holds it again', async (t) => {
  const ws = await startWsUpstream()
  t.teardown(ws.close)
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'required' }, { upstream: ws.url, clock })
  t.teardown(gw.close)
  await addUser(gw, 'dave')
  await addUser(gw, 'erin')
  const authenticator = new SoftAuthenticator(`http://localhost:${new URL(gw.url).port}`)
  const upgrade = async (cookies: Record<string, string>): Promise<number> => await new Promise((resolve, reject) => {
    const socket = new WebSocket(gw.url.replace('http', 'ws') + '/socket', { headers: { host: `localhost:${new URL(gw.url).port}`, cookie: cookieHeader(cookies) } })
    socket.once('open', () => { socket.close(); resolve(101) })
    socket.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0) })
    socket.once('error', reject)
  })

  const browser = new Browser(gw)
  const signedIn = await browser.signIn('dave', '/app')
  t.equal(signedIn.status, 303)
  t.equal(signedIn.headers.location, '/_authgate/account', 'held: sent to enrol')
  const held = { ...browser.cookies }
  t.equal((await browser.request('/app', { headers: { accept: 'application/json' } })).status, 403)
  t.equal(await upgrade(browser.cookies), 403, 'no WebSocket while held')

  const added = await browser.addPasskey(authenticator, 'Key')
  t.equal(added.status, 201, 'a held session may add a passkey')
  t.ok(setCookies(added.headers).authgate, 'the session is replaced')
  const api = await browser.request('/app', { headers: { accept: 'application/json' } })
  t.equal(api.status, 200, 'a full session: the upstream answers')
  t.equal(ws.requests.at(-1)?.headers['x-user'], 'dave')
  t.equal(await upgrade(browser.cookies), 101, 'WebSocket upgrades too')
  t.equal((await http(gw.url + '/app', { headers: { accept: 'application/json', cookie: cookieHeader(held) } })).status, 401, 'the held session ended')
  const account = await browser.request('/_authgate/account')
  t.match(account.body, 'data-passkeys="1"')
  t.notMatch(account.body, escapeHtml(MFA_MESSAGES.enrolmentRequired), 'not held any more')

  await t.test('signing in again: the passkey second step, a session that reaches the upstream', async (t) => {
    const again = new Browser(gw)
    const first = await again.signIn('dave', '/app')
    t.equal(first.status, 200, 'the second step')
    const done = await again.passkeyStep(authenticator, added.credential, mfaTokenFrom(first.body))
    t.equal(done.status, 200)
    t.same(done.body, { location: '/app' })
    t.equal((await again.request('/app', { headers: { accept: 'application/json' } })).status, 200, 'under required: the session passed a factor')
  })

  await t.test('removing the last passkey holds the session again', async (t) => {
    const page = await browser.request('/_authgate/account/passkeys')
    const removed = await browser.form('/_authgate/account/passkeys/remove', { csrf_token: csrfTokenFrom(page.body), id: added.credential.id })
    t.equal(removed.status, 303)
    const api = await browser.request('/app', { headers: { accept: 'application/json' } })
    t.equal(api.status, 403, 'held again')
    t.same(JSON.parse(api.body), { error: 'second_factor_required' })
    const nav = await browser.request('/app')
    t.equal(nav.status, 302)
    t.equal(nav.headers.location, '/_authgate/account')
    t.equal(await upgrade(browser.cookies), 403, 'no WebSocket either')
    const account = await browser.request('/_authgate/account')
    t.match(account.body, 'data-passkeys="0"')
    t.match(account.body, escapeHtml(MFA_MESSAGES.enrolmentRequired))
  })

  await t.test('with TOTP and a passkey, removing TOTP does not hold', async (t) => {
    const erin = new Browser(gw)
    t.equal((await erin.signIn('erin')).headers.location, '/_authgate/account')
    const begun = await erin.form('/_authgate/account/totp', { csrf_token: csrfTokenFrom((await erin.request('/_authgate/account')).body), password: PASSWORD })
    const secret = secretFrom(begun.body)
    const confirmed = await erin.form('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now()) })
    t.equal(recoveryCodesFrom(confirmed.body).length, 10)
    const key = await erin.addPasskey(authenticator, 'Erin key')
    t.equal(key.status, 201)
    t.equal((await erin.request('/app', { headers: { accept: 'application/json' } })).status, 200)
    const step = await new Browser(gw).signIn('erin')
    t.equal(step.status, 200, 'the second step')
    t.match(step.body, 'name="code"', 'an app and a passkey: the code field')
    t.match(step.body, 'id="passkey-second-factor"', 'and the passkey button')
    t.match(step.body, 'Enter the 6-digit code from your authenticator app')
    const account = await erin.request('/_authgate/account')
    t.match(account.body, 'data-passkeys="1"')
    clock.advance(30_000)
    const removed = await erin.form('/_authgate/account/totp/remove', { csrf_token: csrfTokenFrom(account.body), code: totpCode(secret, clock.now()) })
    t.equal(removed.status, 200)
    t.notMatch(removed.body, escapeHtml(MFA_MESSAGES.enrolmentRequired), 'the page does not say held')
    t.notMatch(removed.body, escapeHtml(MFA_MESSAGES.signInAgain), 'nor asks to sign in again')
    t.equal((await erin.request('/app', { headers: { accept: 'application/json' } })).status, 200, 'the passkey remains: not held')
    t.equal(await upgrade(erin.cookies), 101)
  })

  await t.test('a held session of a user who has a passkey: the notice', async (t) => {
    // A session started held (enrolment pending) before the user added a passkey elsewhere stays held,
    // and is told to sign in again with the factor.
    await addUser(gw, 'frank')
    const early = new Browser(gw)
    t.equal((await early.signIn('frank')).headers.location, '/_authgate/account')
    const late = new Browser(gw)
    await late.signIn('frank')
    t.equal((await late.addPasskey(authenticator, 'Frank key')).status, 201)
    t.equal((await early.request('/app', { headers: { accept: 'application/json' } })).status, 403, 'the other session stays held')
    const page = await early.request('/_authgate/account')
    t.match(page.body, 'data-passkeys="1"')
    t.match(page.body, escapeHtml(MFA_MESSAGES.signInAgain))
  })
})
