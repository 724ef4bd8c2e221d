// LOCAL_MFA through the real gateway (LOCAL_AUTH=password): TOTP enrolment on the account page, the
// two-step sign-in, wrong, replayed and recovery codes, expired, used and forged step tokens, the
// throttle on codes, and LOCAL_MFA=required holding a session on the account page over HTTP,
// WebSocket and forward-auth. Codes are computed by test/support/totp.ts (node:crypto from the RFC),
// the gateway's clock is moved by hand to cross TOTP steps and the step token's 5 minutes. Enrolling
// asks for the password again, counted by the sign-in throttle.
import t from 'tap'
import WebSocket from 'ws'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { TestClock } from '../support/clock.js'
import { totpCode } from '../support/totp.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from '../support/http.js'
import { addUser, Browser, enrol, HTML, mfaTokenFrom, PASSWORD, recoveryCodesFrom, secretFrom, signInWithCode } from '../support/second-factor.js'
import { logCapture } from '../support/log-capture.js'
import { REAUTH_MESSAGES } from '../../src/auth/local/reauth.js'
import { MFA_MESSAGES } from '../../src/pages/second-factor.js'
import { escapeHtml } from '../../src/pages/html.js'

const upstream = await startUpstream()
t.teardown(upstream.close)

t.test('LOCAL_MFA=optional: enrolment, two-step sign-in, wrong, replayed and recovery codes, step tokens', async (t) => {
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional', APP_NAME: 'Acme Time' }, { upstream: upstream.url, clock })
  t.teardown(gw.close)
  await addUser(gw, 'alice')

  await t.test('the account page: signed-in users only, a page for browsers, JSON 401 for the rest', async (t) => {
    const anonymous = new Browser(gw.url)
    const nav = await anonymous.get('/_authgate/account')
    t.equal(nav.status, 302)
    t.equal(nav.headers.location, '/login?next=%2F_authgate%2Faccount')
    const api = await anonymous.get('/_authgate/account', { accept: 'application/json' })
    t.equal(api.status, 401)
    t.same(JSON.parse(api.body), { error: 'unauthenticated' })
    const forged = await anonymous.post('/_authgate/account/totp', { csrf_token: 'x' })
    t.equal(forged.status, 303, 'a form posted without a session: to sign in, nothing done')

    const browser = new Browser(gw.url)
    t.equal((await browser.signIn('alice')).status, 303)
    const page = await browser.get('/_authgate/account')
    t.equal(page.status, 200)
    t.match(page.headers['content-security-policy'], /default-src 'none'/)
    t.match(page.body, 'Signed in as <strong>alice</strong>')
    t.match(page.body, 'href="/_authgate/account/passkeys"')
    t.match(page.body, 'data-factor="totp">Off')
    t.match(page.body, 'action="/_authgate/account/sign-out-everywhere"')
    const forms = page.body.match(/<form /g)?.length ?? 0
    t.equal(page.body.match(/name="csrf_token"/g)?.length, forms, 'every form carries the CSRF token')
    const noCsrf = await browser.post('/_authgate/account/totp', { csrf_token: 'A'.repeat(43) })
    t.equal(noCsrf.status, 403)
    t.match(noCsrf.body, escapeHtml(MFA_MESSAGES.csrf))
    t.equal((await gw.db.kysely.selectFrom('user_totp').selectAll().execute()).length, 0, 'nothing enrolled without a valid token')
  })

  let secret = ''
  let codes: string[] = []
  await t.test('enrolment: QR code, secret, a wrong code refused, the right one shows ten recovery codes once', async (t) => {
    const browser = new Browser(gw.url)
    await browser.signIn('alice')
    const begun = await browser.post('/_authgate/account/totp', { csrf_token: await browser.accountCsrf(), password: PASSWORD })
    t.equal(begun.status, 200)
    secret = secretFrom(begun.body)
    t.match(secret, /^[A-Z2-7]{32}$/)
    t.match(begun.body, /<img class="qr" src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+"/, 'a QR code the gateway drew, inline')
    t.match(begun.body, `otpauth://totp/Acme%20Time:alice?secret=${secret}`)
    t.notMatch(begun.body, /<script/)
    const svg = Buffer.from(/data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)/.exec(begun.body)![1]!, 'base64').toString()
    t.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    const row = await gw.db.kysely.selectFrom('user_totp').selectAll().executeTakeFirstOrThrow()
    t.notMatch(row.secret, secret, 'the secret is sealed at rest')
    t.equal(row.confirmed_at, null, 'pending until confirmed')

    const wrong = await browser.post('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now(), 5) })
    t.equal(wrong.status, 400)
    t.match(wrong.body, escapeHtml(MFA_MESSAGES.wrongCode))
    t.equal(secretFrom(wrong.body), secret, 'the same secret again')
    const before = setCookies((await browser.get('/_authgate/account')).headers)
    t.same(before, {}, 'no new session yet')
    const confirmed = await browser.post('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now()) })
    t.equal(confirmed.status, 200)
    codes = recoveryCodesFrom(confirmed.body)
    t.equal(codes.length, 10)
    t.equal(new Set(codes).size, 10)
    t.ok(setCookies(confirmed.headers).authgate, 'the session is replaced by one that passed the factor')
    const stored = await gw.db.kysely.selectFrom('recovery_codes').selectAll().execute()
    t.equal(stored.length, 10)
    t.notOk(stored.some((r) => codes.some((c) => r.code_hash.includes(c) || r.code_hash.includes(c.replace('-', '')))), 'stored hashed')
    const account = await browser.get('/_authgate/account')
    t.match(account.body, 'data-factor="totp">On')
    t.match(account.body, 'data-recovery-codes-left="10"')
    t.equal(recoveryCodesFrom(account.body).length, 0, 'shown once only')
    const again = await browser.post('/_authgate/account/totp', { csrf_token: csrfTokenFrom(account.body), password: PASSWORD })
    t.equal(again.status, 409, 'a confirmed authenticator is not replaced by starting another')
    t.match(again.body, escapeHtml(MFA_MESSAGES.alreadyEnrolled))
    clock.advance(30_000)
  })

  let usedToken = ''
  await t.test('two steps: the password answers the second step (no session), the code signs in to next', async (t) => {
    const browser = new Browser(gw.url)
    const first = await browser.signIn('alice', '/reports?week=2')
    t.equal(first.status, 200)
    t.match(first.body, 'action="/login/mfa"')
    t.match(first.body, 'name="next" value="/reports?week=2"')
    t.equal(setCookies(first.headers).authgate, undefined, 'no session cookie after the password alone')
    t.equal((await browser.get('/reports?week=2', { accept: 'application/json' })).status, 401)

    const wrong = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: mfaTokenFrom(first.body), code: totpCode(secret, clock.now(), 7), next: '/reports?week=2' })
    t.equal(wrong.status, 401)
    t.match(wrong.body, escapeHtml(MFA_MESSAGES.wrongCode))
    t.equal(mfaTokenFrom(wrong.body), mfaTokenFrom(first.body), 'the same step goes on')
    t.equal(setCookies(wrong.headers).authgate, undefined)

    usedToken = mfaTokenFrom(first.body)
    const right = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: usedToken, code: totpCode(secret, clock.now()), next: '/elsewhere' })
    t.equal(right.status, 303)
    t.equal(right.headers.location, '/reports?week=2', 'next as the first step had it')
    const proxied = await browser.get('/reports?week=2', { accept: 'application/json' })
    t.equal(proxied.status, 200)
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'alice')
  })

  await t.test('a TOTP code is used once: the same code again is refused, the next step\'s works', async (t) => {
    const browser = new Browser(gw.url)
    const { second } = await signInWithCode(browser, 'alice', totpCode(secret, clock.now()))
    t.equal(second.status, 401)
    t.match(second.body, escapeHtml(MFA_MESSAGES.replayed))
    const earlier = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(second.body), mfa_token: mfaTokenFrom(second.body), code: totpCode(secret, clock.now(), -1), next: '/' })
    t.equal(earlier.status, 401, 'an earlier step too')
    clock.advance(30_000)
    const next = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(second.body), mfa_token: mfaTokenFrom(second.body), code: totpCode(secret, clock.now()), next: '/' })
    t.equal(next.status, 303)
  })

  await t.test('a recovery code signs in once', async (t) => {
    const browser = new Browser(gw.url)
    const { second } = await signInWithCode(browser, 'alice', codes[0]!.toUpperCase())
    t.equal(second.status, 303)
    const account = await browser.get('/_authgate/account')
    t.match(account.body, 'data-recovery-codes-left="9"')
    const again = await signInWithCode(new Browser(gw.url), 'alice', codes[0]!)
    t.equal(again.second.status, 401)
    t.match(again.second.body, escapeHtml(MFA_MESSAGES.wrongCode))
  })

  await t.test('step tokens: used, forged, malformed or expired: back to sign in, 4xx, no session', async (t) => {
    const browser = new Browser(gw.url)
    const first = await browser.signIn('alice')
    const csrf = csrfTokenFrom(first.body)
    clock.advance(30_000)
    for (const [name, token] of [['used', usedToken], ['forged', 'A'.repeat(43)], ['malformed', 'x'], ['missing', '']] as const) {
      const res = await browser.post('/login/mfa', { csrf_token: csrf, mfa_token: token, code: totpCode(secret, clock.now()), next: '/' })
      t.equal(res.status, 400, name)
      t.match(res.body, escapeHtml(MFA_MESSAGES.stepExpired), name)
      t.match(res.body, 'action="/login"', `${name}: the login page`)
      t.equal(setCookies(res.headers).authgate, undefined, name)
    }
    clock.advance(5 * 60_000 + 1000)
    const expired = await browser.post('/login/mfa', { csrf_token: csrf, mfa_token: mfaTokenFrom(first.body), code: totpCode(secret, clock.now()), next: '/' })
    t.equal(expired.status, 400, 'expired after 5 minutes')
    t.match(expired.body, escapeHtml(MFA_MESSAGES.stepExpired))
    const badCsrf = await browser.post('/login/mfa', { csrf_token: 'A'.repeat(43), mfa_token: mfaTokenFrom(first.body), code: '000000', next: '/' })
    t.equal(badCsrf.status, 403)
  })

  await t.test('removing the authenticator and new recovery codes need a current code', async (t) => {
    const browser = new Browser(gw.url)
    clock.advance(30_000)
    const signedIn = (await signInWithCode(browser, 'alice', totpCode(secret, clock.now()))).second
    t.equal(signedIn.status, 303)
    const csrf = await browser.accountCsrf()
    const wrong = await browser.post('/_authgate/account/recovery-codes', { csrf_token: csrf, code: '000000' })
    t.equal(wrong.status, 400)
    clock.advance(30_000)
    const fresh = await browser.post('/_authgate/account/recovery-codes', { csrf_token: csrf, code: totpCode(secret, clock.now()) })
    t.equal(fresh.status, 200)
    const newCodes = recoveryCodesFrom(fresh.body)
    t.equal(newCodes.length, 10)
    t.notOk(newCodes.includes(codes[1]!))
    t.equal((await signInWithCode(new Browser(gw.url), 'alice', codes[1]!)).second.status, 401, 'the old codes no longer work')
    const noCode = await browser.post('/_authgate/account/totp/remove', { csrf_token: csrf, code: '' })
    t.equal(noCode.status, 400)
    t.ok(await gw.db.kysely.selectFrom('user_totp').selectAll().executeTakeFirst(), 'still there')
    const removed = await browser.post('/_authgate/account/totp/remove', { csrf_token: csrf, code: newCodes[0]! })
    t.equal(removed.status, 200)
    t.match(removed.body, escapeHtml(MFA_MESSAGES.totpRemoved))
    t.equal((await gw.db.kysely.selectFrom('recovery_codes').selectAll().execute()).length, 0)
    t.equal((await new Browser(gw.url).signIn('alice')).status, 303, 'the password alone signs in again')
  })

  await t.test('metrics: sign-ins by factor and second-step failures', async (t) => {
    const metrics = (await http(gw.url + '/_authgate/metrics')).body
    t.match(metrics, /authgate_local_sign_ins_by_factor_total\{factor="totp"\} [1-9]/)
    t.match(metrics, /authgate_local_sign_ins_by_factor_total\{factor="recovery"\} 1/)
    t.match(metrics, /authgate_second_step_failures_total\{reason="replayed"\} [1-9]/)
    t.match(metrics, /authgate_second_step_failures_total\{reason="step-expired"\} [1-9]/)
  })

  await t.test('sign out everywhere ends every session of the user', async (t) => {
    const one = new Browser(gw.url)
    const two = new Browser(gw.url)
    await one.signIn('alice')
    await two.signIn('alice')
    t.equal((await two.get('/x', { accept: 'application/json' })).status, 200)
    const out = await one.post('/_authgate/account/sign-out-everywhere', { csrf_token: await one.accountCsrf() })
    t.equal(out.status, 303)
    t.equal(out.headers.location, '/login?signed_out=1')
    t.equal((await two.get('/x', { accept: 'application/json' })).status, 401, 'the other browser too, at once on this instance')
    t.equal((await one.get('/x', { accept: 'application/json' })).status, 401)
  })
})

t.test('wrong codes are counted by the sign-in throttle: 429 with Retry-After', async (t) => {
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: upstream.url, clock })
  t.teardown(gw.close)
  await addUser(gw, 'carol')
  const { secret } = await enrol(t, gw, clock, 'carol')
  const browser = new Browser(gw.url)
  const first = await browser.signIn('carol')
  let last: Response | undefined
  let tries = 0
  for (; tries < 15; tries++) {
    last = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: mfaTokenFrom(first.body), code: '000000', next: '/' })
    if (last.status === 429) break
    t.equal(last.status, 401)
  }
  t.equal(last?.status, 429, `throttled after ${tries} wrong codes`)
  t.ok(tries <= 10, 'within the per-username limit')
  t.match(String(last?.headers['retry-after']), /^\d+$/)
  const right = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: mfaTokenFrom(first.body), code: totpCode(secret, clock.now()), next: '/' })
  t.equal(right.status, 429, 'even the right code waits')
  t.equal(setCookies(right.headers).authgate, undefined)
})

t.test('LOCAL_MFA=required: held on the account page until enrolled (HTTP, WebSocket, forward-auth)', async (t) => {
  const ws = await startWsUpstream()
  t.teardown(ws.close)
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'required' }, { upstream: ws.url, clock })
  t.teardown(gw.close)
  await addUser(gw, 'dave')
  const browser = new Browser(gw.url)
  const signedIn = await browser.signIn('dave', '/app')
  t.equal(signedIn.status, 303)
  t.equal(signedIn.headers.location, '/_authgate/account', 'sent to enrol')
  const heldCookies = { ...browser.cookies }
  const otherBrowser = new Browser(gw.url)
  t.equal((await otherBrowser.signIn('dave')).headers.location, '/_authgate/account', 'a second browser, held too')

  const upgrade = async (cookies: Record<string, string>): Promise<number> => await new Promise((resolve, reject) => {
    const socket = new WebSocket(gw.url.replace('http', 'ws') + '/socket', { headers: { cookie: cookieHeader(cookies) } })
    socket.once('open', () => { socket.close(); resolve(101) })
    socket.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0) })
    socket.once('error', reject)
  })

  const requestsBefore = ws.requests.length
  const handshakesBefore = ws.handshakes.length
  const nav = await browser.get('/app')
  t.equal(nav.status, 302)
  t.equal(nav.headers.location, '/_authgate/account')
  const api = await browser.get('/api/data', { accept: 'application/json' })
  t.equal(api.status, 403)
  t.same(JSON.parse(api.body), { error: 'second_factor_required' })
  t.equal(await upgrade(browser.cookies), 403, 'a WebSocket upgrade is refused')
  const fa = await browser.get('/_authgate/auth', { accept: 'application/json', 'x-forwarded-uri': '/app' })
  t.equal(fa.status, 403, 'forward-auth refuses')
  const faNav = await browser.get('/_authgate/auth?redirect=true', { accept: HTML, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app' })
  t.equal(faNav.status, 302)
  t.equal(faNav.headers.location, '/_authgate/account')
  t.equal(ws.requests.length, requestsBefore, 'no request reached the upstream')
  t.equal(ws.handshakes.length, handshakesBefore, 'no handshake reached the upstream')

  const account = await browser.get('/_authgate/account')
  t.equal(account.status, 200)
  t.match(account.body, escapeHtml(MFA_MESSAGES.enrolmentRequired))
  t.match(account.body, 'name="password" autocomplete="current-password"', 'the held session is asked for its password too')
  const begun = await browser.post('/_authgate/account/totp', { csrf_token: csrfTokenFrom(account.body), password: PASSWORD })
  const secret = secretFrom(begun.body)
  const confirmed = await browser.post('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now()) })
  t.equal(confirmed.status, 200)
  t.equal(recoveryCodesFrom(confirmed.body).length, 10)

  t.equal((await browser.get('/app', { accept: 'application/json' })).status, 200, 'a full session now')
  t.equal(await upgrade(browser.cookies), 101, 'WebSocket upgrades too')
  t.equal((await browser.get('/_authgate/auth', { accept: 'application/json' })).status, 200, 'forward-auth too')
  t.equal((await http(gw.url + '/app', { headers: { accept: 'application/json', cookie: cookieHeader(heldCookies) } })).status, 401, 'the held session was replaced, and ended')
  t.equal((await otherBrowser.get('/app', { accept: 'application/json' })).status, 403, 'the other browser\'s session stays held')
  t.match((await otherBrowser.get('/_authgate/account')).body, escapeHtml(MFA_MESSAGES.signInAgain), 'and is told to sign in again with the app')

  clock.advance(30_000)
  const again = new Browser(gw.url)
  const first = await again.signIn('dave')
  t.equal(first.status, 200, 'enrolled: the second step')
  const second = await again.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: mfaTokenFrom(first.body), code: totpCode(secret, clock.now()), next: '/' })
  t.equal(second.status, 303)
  t.equal(second.headers.location, '/')
  t.equal((await again.get('/app', { accept: 'application/json' })).status, 200)
})

t.test('enrolling an authenticator app asks for the password again', async (t) => {
  const clock = TestClock.atWholeSecond()
  const capture = logCapture('info')
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { upstream: upstream.url, clock, logger: capture.logger })
  t.teardown(gw.close)
  await addUser(gw, 'frank')
  const pendingRows = async (): Promise<number> => (await gw.db.kysely.selectFrom('user_totp').selectAll().execute()).length
  const reauthFailures = (): Array<Record<string, unknown>> => capture.lines().filter((l) => l.audit === 'reauth-failed')
  const browser = new Browser(gw.url)
  t.equal((await browser.signIn('frank')).status, 303)
  const page = await browser.get('/_authgate/account')
  t.match(page.body, /<form method="post" action="\/_authgate\/account\/totp"><input type="hidden" name="csrf_token" value="[^"]+"><div class="field">\n<label for="totp-password">Your current password<\/label>\n<input type="password" id="totp-password" name="password" autocomplete="current-password" required>/, 'the form asks for the password')

  const forged = await browser.post('/_authgate/account/totp', { csrf_token: 'A'.repeat(43), password: 'wrong password' })
  t.equal(forged.status, 403, 'the CSRF check comes first')
  t.equal(reauthFailures().length, 0, 'a forged form is not a password attempt')

  const csrf = csrfTokenFrom(page.body)
  const missing = await browser.post('/_authgate/account/totp', { csrf_token: csrf })
  t.equal(missing.status, 400, 'no password: 400')
  t.match(missing.body, escapeHtml(REAUTH_MESSAGES.missing))
  t.equal(secretFrom(missing.body), '', 'no secret shown')

  const wrong = await browser.post('/_authgate/account/totp', { csrf_token: csrf, password: 'not the password' })
  t.equal(wrong.status, 401, 'a wrong password: 401')
  t.match(wrong.body, escapeHtml(REAUTH_MESSAGES.wrong))
  t.match(wrong.body, 'id="account-error"', 'on the account page, as an error')
  t.equal(secretFrom(wrong.body), '', 'no secret shown')
  t.equal(await pendingRows(), 0, 'no pending authenticator stored')
  t.equal(reauthFailures().length, 1)
  t.match(reauthFailures()[0], { user: 'frank', by: 'user', factor: 'totp', reason: 'wrong-password' })
  t.notOk(capture.lines().some((l) => JSON.stringify(l).includes('not the password')), 'what was typed is never logged')

  const right = await browser.post('/_authgate/account/totp', { csrf_token: csrf, password: PASSWORD })
  t.equal(right.status, 200, 'the right password: the enrolment page')
  t.match(secretFrom(right.body), /^[A-Z2-7]{32}$/)
  t.equal(await pendingRows(), 1, 'one pending authenticator')
  const confirmed = await browser.post('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(right.body), code: totpCode(secretFrom(right.body), clock.now()) })
  t.equal(confirmed.status, 200, 'confirming needs no password again: it needs the pending secret the check let through')

  // A second user, from another browser: ten wrong passwords (its device budget), then a wait.
  await addUser(gw, 'grace')
  const other = new Browser(gw.url)
  t.equal((await other.signIn('grace')).status, 303)
  const token = await other.accountCsrf()
  for (let i = 0; i < 10; i++) t.equal((await other.post('/_authgate/account/totp', { csrf_token: token, password: `guess ${i}` })).status, 401, `wrong password ${i + 1}`)
  const throttled = await other.post('/_authgate/account/totp', { csrf_token: token, password: PASSWORD })
  t.equal(throttled.status, 429, 'then even the right password waits')
  t.match(throttled.headers['retry-after'], /^\d+$/)
  t.match(throttled.body, 'Too many wrong passwords.')
  t.equal(await pendingRows(), 1, 'nothing stored for grace')
  t.ok(reauthFailures().some((l) => l.user === 'grace' && l.reason === 'throttled' && l.factor === 'totp'), 'the throttled attempt audited')
  const signIn = await other.post('/login', { username: 'grace', password: PASSWORD, csrf_token: token, next: '/' })
  t.equal(signIn.status, 429, 'the same throttle as sign-in: this browser\'s password sign-in waits too')
})
