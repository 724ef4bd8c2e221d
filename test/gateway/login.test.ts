// Local sign-in through the real gateway: both LOCAL_AUTH modes, CSRF, self-registration, admins,
// disabled users, throttling, and a fresh session cookie at every sign-in.
import t from 'tap'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies } from '../support/http.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MESSAGES } from '../../src/pages/login.js'
import { escapeHtml } from '../../src/pages/html.js'

const upstream = await startUpstream()
t.teardown(upstream.close)

async function postLogin (baseUrl: string, fields: Record<string, string>, cookies?: Record<string, string>): Promise<Awaited<ReturnType<typeof http>> & { cookies: Record<string, string> }> {
  let jar = cookies
  let token = fields.csrf_token
  if (jar === undefined) {
    const page = await http(`${baseUrl}/login`)
    jar = setCookies(page.headers)
    token ??= csrfTokenFrom(page.body)
  }
  const res = await http(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(jar) },
    body: new URLSearchParams({ next: '/', ...fields, csrf_token: token ?? '' }).toString()
  })
  return { ...res, cookies: { ...jar, ...setCookies(res.headers) } }
}

t.test('LOCAL_AUTH=username (default)', async (t) => {
  const gw = await startGateway({ ADMIN_USERNAMES: 'boss' }, { upstream: upstream.url })
  t.teardown(gw.close)

  await t.test('login page is plain HTML with a CSRF field and next kept', async (t) => {
    const res = await http(`${gw.url}/login?next=${encodeURIComponent('/projects?x="><script>')}`)
    t.equal(res.status, 200)
    t.match(res.headers['content-type'], /text\/html/)
    t.match(res.body, /name="csrf_token" value="[\w-]{43}"/)
    t.match(res.body, 'name="next" value="/projects?x=%22%3E%3Cscript%3E"', 'next kept, normalised')
    t.notMatch(res.body, /<script/, 'no script anywhere')
    t.notMatch(res.body, /name="password"/, 'no password field in username mode')
    t.match(res.headers['content-security-policy'], /default-src 'none'/)
  })

  await t.test('a new user is created, trimmed and lower-cased, and lands on next', async (t) => {
    const { response, cookies } = await loginLocal(gw.url, '  Alice ', { next: '/reports?week=1' })
    t.equal(response.status, 303)
    t.equal(response.headers.location, '/reports?week=1')
    t.ok(cookies.authgate, 'session cookie set')
    const cookie = ([] as string[]).concat(response.headers['set-cookie'] ?? []).find((c) => c.startsWith('authgate='))!
    t.match(cookie, /HttpOnly/i)
    t.match(cookie, /SameSite=Lax/i)
    t.match(cookie, /Path=\//)
    t.notMatch(cookie, /Secure/, 'not Secure on plain http unless configured')
    const user = await gw.users.findByUsername('alice')
    t.equal(user?.username, 'alice')
    t.equal(user?.isAdmin, false)
    t.ok(user?.lastLoginAt, 'last login recorded')
    const proxied = await http(`${gw.url}/reports?week=1`, { headers: { cookie: cookieHeader(cookies) } })
    t.equal(proxied.status, 200)
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'alice')
  })

  await t.test('ADMIN_USERNAMES are admins', async (t) => {
    await loginLocal(gw.url, 'boss')
    t.equal((await gw.users.findByUsername('boss'))?.isAdmin, true)
  })

  await t.test('CSRF token missing, wrong, or from another browser: refused, no user created', async (t) => {
    const missing = await postLogin(gw.url, { username: 'eve1', csrf_token: '' })
    t.equal(missing.status, 403)
    t.match(missing.body, escapeHtml(MESSAGES.csrf))
    const wrong = await postLogin(gw.url, { username: 'eve2', csrf_token: 'A'.repeat(43) })
    t.equal(wrong.status, 403)
    const other = await http(`${gw.url}/login`)
    const crossBrowser = await postLogin(gw.url, { username: 'eve3', csrf_token: csrfTokenFrom(other.body) })
    t.equal(crossBrowser.status, 403, 'a token only works with its own browser cookie')
    const noCookie = await postLogin(gw.url, { username: 'eve4', csrf_token: csrfTokenFrom(other.body) }, {})
    t.equal(noCookie.status, 403)
    for (const u of ['eve1', 'eve2', 'eve3', 'eve4']) t.equal(await gw.users.findByUsername(u), undefined)
    t.notOk(crossBrowser.cookies.authgate, 'no session')
  })

  await t.test('invalid usernames get a 400 with the rule', async (t) => {
    for (const username of ['', '   ', 'a b', '<script>', 'x'.repeat(65), 'ünïcode-ok'.replace('ok', '\u0000')]) {
      const res = await postLogin(gw.url, { username })
      t.equal(res.status, 400, JSON.stringify(username))
      t.notMatch(res.body, /<script>/)
    }
  })

  await t.test('names that NFKC would change are refused, never folded onto another account', async (t) => {
    const { user: admin } = await gw.users.create({ username: 'admin', isAdmin: true })
    await gw.users.create({ username: 'karl' })
    for (const [typed, lookalikeOf] of [['ａｄｍｉｎ', 'admin'], ['\u212Aarl', 'karl'], ['ﬁona', 'fiona'], ['Zoe\u0301', 'zoé']] as const) {
      const before = await gw.users.findByUsername(lookalikeOf)
      const res = await postLogin(gw.url, { username: typed })
      t.equal(res.status, 400, JSON.stringify(typed))
      t.match(res.body, /look like other characters/, 'the page says why')
      t.notOk(res.cookies.authgate, 'no session')
      t.same(await gw.users.findByUsername(lookalikeOf), before, `${lookalikeOf} unchanged (or still absent)`)
    }
    t.equal((await gw.users.findByUsername('admin'))?.lastLoginAt, admin.lastLoginAt)
  })

  await t.test('a disabled user is refused', async (t) => {
    await gw.users.create({ username: 'mallory' })
    await gw.users.setActive('mallory', false)
    const res = await postLogin(gw.url, { username: 'mallory' })
    t.equal(res.status, 403)
    t.match(res.body, escapeHtml(MESSAGES.disabled))
    t.notOk(res.cookies.authgate)
  })

  await t.test('every sign-in issues a fresh session cookie (no fixation)', async (t) => {
    const first = await loginLocal(gw.url, 'carol')
    const page = await http(`${gw.url}/login`, { headers: { cookie: cookieHeader(first.cookies) } })
    t.equal(page.status, 302, 'already signed in: /login goes to next')
    const planted = { ...first.cookies, authgate: first.cookies.authgate! }
    const fresh = await http(`${gw.url}/login`)
    const again = await postLogin(gw.url, { username: 'dave', csrf_token: csrfTokenFrom(fresh.body) }, { ...planted, ...setCookies(fresh.headers) })
    t.equal(again.status, 303)
    t.ok(again.cookies.authgate)
    t.not(again.cookies.authgate, planted.authgate, 'the planted cookie was replaced')
    await http(`${gw.url}/whoami`, { headers: { cookie: cookieHeader(again.cookies) } })
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'dave')
  })

  await t.test('odd next values fall back to /', async (t) => {
    const { response } = await loginLocal(gw.url, 'erin', { next: '//evil.example/' })
    t.equal(response.headers.location, '/')
  })

  await t.test('an oversized form is refused with 413, not a crash', async (t) => {
    const res = await http(`${gw.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=' + 'a'.repeat(20_000) })
    t.equal(res.status, 413)
    t.notMatch(res.body, /at .*\.js/)
  })
})

t.test('ALLOW_SELF_REGISTER=false refuses unknown users', async (t) => {
  const gw = await startGateway({ ALLOW_SELF_REGISTER: 'false' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const res = await postLogin(gw.url, { username: 'stranger' })
  t.equal(res.status, 403)
  t.match(res.body, escapeHtml(MESSAGES.registrationClosed))
  t.equal(await gw.users.findByUsername('stranger'), undefined)
  await gw.users.create({ username: 'known' })
  t.equal((await postLogin(gw.url, { username: 'known' })).status, 303, 'existing users still sign in')
})

t.test('LOCAL_AUTH=password', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { upstream: upstream.url })
  t.teardown(gw.close)
  await gw.users.create({ username: 'alice', passwordHash: await hashPassword('correct horse') })
  await gw.users.create({ username: 'nopass' })

  const page = await http(`${gw.url}/login`)
  t.match(page.body, /type="password"/)

  const ok = await postLogin(gw.url, { username: 'Alice', password: 'correct horse' })
  t.equal(ok.status, 303)
  t.ok(ok.cookies.authgate)

  const wrong = await postLogin(gw.url, { username: 'alice', password: 'wrong horse' })
  const unknown = await postLogin(gw.url, { username: 'nobody', password: 'wrong horse' })
  const noPassword = await postLogin(gw.url, { username: 'nopass', password: 'anything' })
  for (const [name, res] of [['wrong password', wrong], ['unknown user', unknown], ['user without password', noPassword]] as const) {
    t.equal(res.status, 401, name)
    t.match(res.body, escapeHtml(MESSAGES.invalidCredentials), name)
    t.notOk(res.cookies.authgate, name)
  }
  t.equal(await gw.users.findByUsername('nobody'), undefined, 'no self-registration in password mode')
})

t.test('repeated failures are throttled with 429 and Retry-After', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { upstream: upstream.url })
  t.teardown(gw.close)
  await gw.users.create({ username: 'target', passwordHash: await hashPassword('the right one') })
  const page = await http(`${gw.url}/login`)
  const jar = setCookies(page.headers)
  const token = csrfTokenFrom(page.body)
  for (let i = 0; i < 10; i++) t.equal((await postLogin(gw.url, { username: 'target', password: 'nope', csrf_token: token }, jar)).status, 401)
  const throttled = await postLogin(gw.url, { username: 'target', password: 'the right one', csrf_token: token }, jar)
  t.equal(throttled.status, 429, 'even the right password waits')
  t.match(throttled.headers['retry-after'], /^\d+$/)
  t.notOk(throttled.cookies.authgate)
})
