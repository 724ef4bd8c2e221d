// The session cookie as an attacker and an operator see it: expired, tampered, truncated and
// foreign cookies are "not signed in"; keys rotate without signing anyone out; revocation works.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, SECRET_KEY } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal, setCookies } from '../support/http.js'
import { newSessionPayload } from '../../src/session/session.js'

const upstream = await startUpstream()
t.teardown(upstream.close)
const OLD_KEY = 'old-secret-key-0123456789abcdefghijklmnopq'
const NEW_KEY = 'new-secret-key-0123456789abcdefghijklmnopq'

const asApi = async (baseUrl: string, cookie: string): Promise<Awaited<ReturnType<typeof http>>> =>
  await http(`${baseUrl}/api/thing`, { headers: { cookie, accept: 'application/json' } })

t.test('bad cookies are simply "not signed in"', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'alice')
  const good = cookies.authgate!
  t.equal((await asApi(gw.url, `authgate=${good}`)).status, 200, 'the real cookie works')

  const [cipher, nonce] = decodeURIComponent(good).split(';') as [string, string]
  const flipped = Buffer.from(cipher, 'base64')
  flipped[5] = flipped[5]! ^ 1
  const bad: Record<string, string> = {
    tampered: encodeURIComponent(flipped.toString('base64') + ';' + nonce),
    truncated: good.slice(0, Math.floor(good.length / 2)),
    'no nonce': encodeURIComponent(cipher),
    'wrong nonce length': encodeURIComponent(cipher + ';AAAA'),
    garbage: 'not-a-cookie',
    'empty value': '',
    'percent garbage': '%E0%A4%A',
    'huge': 'A'.repeat(3000) + ';' + 'B'.repeat(32)
  }
  for (const [name, value] of Object.entries(bad)) {
    const res = await asApi(gw.url, `authgate=${value}`)
    t.equal(res.status, 401, name)
    t.same(JSON.parse(res.body), { error: 'unauthenticated' }, name)
  }
  const browser = await http(`${gw.url}/somewhere`, { headers: { cookie: `authgate=${bad.tampered}`, accept: 'text/html' } })
  t.equal(browser.status, 302)
  t.equal(browser.headers.location, '/login?next=%2Fsomewhere')

  const other = await startGateway({ SECRET_KEY: NEW_KEY }, { upstream: upstream.url })
  t.teardown(other.close)
  const foreign = await http(`${other.url}/api`, { headers: { cookie: `authgate=${good}`, accept: 'application/json' } })
  t.equal(foreign.status, 401, 'a cookie from a gateway with another key')
})

t.test('expiry inside the encrypted payload is enforced', async (t) => {
  const gw = await startGateway({ SESSION_MAX_AGE: '3600' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const { user } = await gw.users.create({ username: 'old' })
  const now = Math.floor(Date.now() / 1000)
  const cookieFor = (payload: unknown): string => {
    const session = gw.app.createSecureSession({ s: payload } as never)
    return 'authgate=' + encodeURIComponent(gw.app.encodeSecureSession(session))
  }
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(user, 'local', 3600, now)))).status, 200, 'current session accepted')
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(user, 'local', 3600, now - 3600)))).status, 401, 'expired')
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(user, 'local', 7200, now)))).status, 401, 'lifetime beyond SESSION_MAX_AGE')
  t.equal((await asApi(gw.url, cookieFor({ ...newSessionPayload(user, 'local', 3600, now), v: 2 }))).status, 401, 'unknown payload version')
  t.equal((await asApi(gw.url, cookieFor({ uid: user.id }))).status, 401, 'wrong shape')
})

t.test('SECRET_KEY rotation keeps sessions, then retires the old key', async (t) => {
  const before = await startGateway({ SECRET_KEY: OLD_KEY }, { upstream: upstream.url })
  const { cookies } = await loginLocal(before.url, 'rotating')
  await before.close()

  const during = await startGateway({ SECRET_KEY: NEW_KEY, SECRET_KEY_PREVIOUS: `${SECRET_KEY},${OLD_KEY}` }, { upstream: upstream.url })
  t.teardown(during.close)
  const res = await http(`${during.url}/api/x`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })
  t.equal(res.status, 200, 'old-key cookie accepted during rotation')
  t.equal(upstream.received.at(-1)?.headers['x-user'], 'rotating')
  const reissued = setCookies(res.headers).authgate
  t.ok(reissued, 'the cookie is re-encrypted with the new key on the way back')

  const after = await startGateway({ SECRET_KEY: NEW_KEY }, { upstream: upstream.url })
  t.teardown(after.close)
  t.equal((await http(`${after.url}/api/x`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })).status, 401, 'old cookie refused once the old key is gone')
  t.equal((await http(`${after.url}/api/x`, { headers: { cookie: `authgate=${reissued!}`, accept: 'application/json' } })).status, 200, 'the re-encrypted cookie survives')
})

t.test('revoked and disabled users lose their sessions within the refresh interval', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url, revocationRefreshMs: 50 })
  t.teardown(gw.close)
  const alice = (await loginLocal(gw.url, 'alice')).cookies
  const bob = (await loginLocal(gw.url, 'bob')).cookies
  const status = async (cookies: Record<string, string>): Promise<number> => (await http(`${gw.url}/api`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })).status
  t.equal(await status(alice), 200)

  await gw.users.revokeSessions('alice')
  await gw.users.setActive('bob', false)
  let aliceStatus = 200
  let bobStatus = 200
  for (let i = 0; i < 100 && (aliceStatus === 200 || bobStatus === 200); i++) {
    await sleep(20)
    aliceStatus = await status(alice)
    bobStatus = await status(bob)
  }
  t.equal(aliceStatus, 401, 'revoked session refused')
  t.equal(bobStatus, 401, 'disabled user refused')

  await sleep(1100) // sessions issued in the revocation's own second are refused too
  const again = (await loginLocal(gw.url, 'alice')).cookies
  t.equal(await status(again), 200, 'a new sign-in after revocation works')
  await gw.users.setActive('bob', true)
  await sleep(200)
  t.equal(await status(bob), 401, 're-enabling does not revive old sessions')
})

t.test('logout clears the session', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'leaver')
  for (const method of ['GET', 'POST']) {
    const res = await http(`${gw.url}/logout`, { method, headers: { cookie: cookieHeader(cookies), origin: gw.url } })
    t.equal(res.status, 303, method)
    t.equal(res.headers.location, '/login?signed_out=1', 'lands on the login page saying so')
    t.equal(setCookies(res.headers).authgate, '', `${method}: cookie cleared`)
  }
})

t.test('Secure cookies use the __Host- prefix', async (t) => {
  const gw = await startGateway({ SESSION_COOKIE_SECURE: 'true' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const page = await http(`${gw.url}/login`)
  const csrf = ([] as string[]).concat(page.headers['set-cookie'] ?? [])
  t.match(csrf[0], /^__Host-authgate_csrf=[\w-]+; Path=\/; HttpOnly; Secure; SameSite=Lax/)
})
