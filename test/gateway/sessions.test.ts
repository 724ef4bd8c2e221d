// The session cookie as an attacker and an operator see it: expired, tampered, truncated and
// foreign cookies are "not signed in"; a cookie is valid in its own deployment only; keys rotate
// without signing anyone out; revocation works; logout (and signing in again) ends the session on every replica.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPostgresSchema, createTestDatabase, startGateway, SECRET_KEY, TEST_DATABASE_URL } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies } from '../support/http.js'
import { newSessionId, newSessionPayload } from '../../src/session/session.js'
import { TestClock } from '../support/clock.js'
import { logCapture } from '../support/log-capture.js'

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
    huge: 'A'.repeat(3000) + ';' + 'B'.repeat(32)
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
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(newSessionId(), user, 'local', 3600, now)))).status, 200, 'current session accepted')
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(newSessionId(), user, 'local', 3600, now - 3600)))).status, 401, 'expired')
  t.equal((await asApi(gw.url, cookieFor(newSessionPayload(newSessionId(), user, 'local', 7200, now)))).status, 401, 'lifetime beyond SESSION_MAX_AGE')
  t.equal((await asApi(gw.url, cookieFor({ ...newSessionPayload(newSessionId(), user, 'local', 3600, now), v: 3 }))).status, 401, 'unknown payload version')
  t.equal((await asApi(gw.url, cookieFor({ uid: user.id }))).status, 401, 'wrong shape')
  const { sid: _sid, ...withoutSessionId } = newSessionPayload(newSessionId(), user, 'local', 3600, now)
  t.equal((await asApi(gw.url, cookieFor({ ...withoutSessionId, v: 1 }))).status, 401, 'a version 1 payload (before server-side sessions): signed out')
})

/** Same-site sign-out, as the application's own "Logout" link sends it. */
const logout = async (baseUrl: string, cookie: string): Promise<Awaited<ReturnType<typeof http>>> =>
  await http(`${baseUrl}/logout`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })

/** Poll until `check` returns the wanted value or a generous bound passes; the last value. */
async function eventually<T> (check: () => Promise<T>, wanted: T): Promise<T> {
  let value = await check()
  for (let i = 0; i < 200 && value !== wanted; i++) {
    await sleep(25)
    value = await check()
  }
  return value
}

t.test('a cookie is valid in its own deployment only, and in every replica of it', async (t) => {
  // Staging and production share SECRET_KEY (a copied .env) but not their database.
  const staging = await startGateway({}, { upstream: upstream.url })
  t.teardown(staging.close)
  const production = await startGateway({}, { upstream: upstream.url })
  t.teardown(production.close)
  const admin = cookieHeader((await loginLocal(staging.url, 'admin')).cookies)
  t.equal((await asApi(staging.url, admin)).status, 200, 'accepted where it was issued')
  const elsewhere = await asApi(production.url, admin)
  t.equal(elsewhere.status, 401, 'another deployment with the same SECRET_KEY: not signed in')
  t.same(JSON.parse(elsewhere.body), { error: 'unauthenticated' })

  // The login form's CSRF token is bound to its deployment too.
  const page = await http(`${staging.url}/login`)
  const form = new URLSearchParams({ username: 'admin', csrf_token: csrfTokenFrom(page.body), next: '/' })
  const posted = await http(`${production.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(setCookies(page.headers)) }, body: form.toString() })
  t.equal(posted.status, 403, 'a CSRF token from another deployment is refused')

  // A replica on the same database is the same deployment: sessions work in both directions.
  const replica = await startGateway({}, { upstream: upstream.url, db: staging.db })
  t.teardown(replica.close)
  t.equal((await asApi(replica.url, admin)).status, 200, 'the replica accepts the first instance\'s cookie')
  const fromReplica = cookieHeader((await loginLocal(replica.url, 'bob')).cookies)
  t.equal((await asApi(staging.url, fromReplica)).status, 200, 'and the first instance the replica\'s')
})

t.test('logout ends the session: a copy of the cookie taken before it stops working at once', async (t) => {
  // The default refresh interval (5 s): this gateway applies its own logout without waiting for it.
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  const copy = cookieHeader((await loginLocal(gw.url, 'leaver')).cookies)
  const other = cookieHeader((await loginLocal(gw.url, 'leaver')).cookies)
  t.equal((await asApi(gw.url, copy)).status, 200)
  const res = await logout(gw.url, copy)
  t.equal(res.status, 303)
  t.equal(setCookies(res.headers).authgate, '', 'the browser\'s cookie is cleared')
  t.equal((await asApi(gw.url, copy)).status, 401, 'the copy is refused right after the logout')
  t.equal((await asApi(gw.url, other)).status, 200, 'the same user\'s other session (another browser) goes on')
  t.equal((await logout(gw.url, copy)).status, 303, 'logging out again with the ended cookie is harmless')
})

t.test('signing in again ends the session it replaces: a copy of the old cookie stops working', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  const page = await http(`${gw.url}/login`)
  const csrf = setCookies(page.headers)
  const signIn = async (cookies: Record<string, string>, username: string): Promise<Record<string, string>> => {
    const res = await http(`${gw.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(cookies) },
      body: new URLSearchParams({ username, csrf_token: csrfTokenFrom(page.body), next: '/' }).toString()
    })
    t.equal(res.status, 303)
    return { ...cookies, ...setCookies(res.headers) }
  }
  const first = await signIn(csrf, 'switcher')
  const copy = cookieHeader(first)
  t.equal((await asApi(gw.url, copy)).status, 200)
  const second = await signIn(first, 'other-account')
  t.equal((await asApi(gw.url, cookieHeader(second))).status, 200, 'the new session works')
  t.equal((await asApi(gw.url, copy)).status, 401, 'the replaced one is ended, not left valid until it expires')
})

if (TEST_DATABASE_URL !== undefined) {
  t.test('a logout on one gateway ends the session on another sharing the PostgreSQL schema', async (t) => {
    const schema = await createPostgresSchema()
    const [dbA, dbB] = [schema.open(), schema.open()]
    const a = await startGateway({}, { upstream: upstream.url, db: dbA, revocationRefreshMs: 50 })
    const b = await startGateway({}, { upstream: upstream.url, db: dbB, revocationRefreshMs: 50 })
    t.teardown(async () => { await a.close(); await b.close(); await dbA.close(); await dbB.close(); await schema.drop() })
    const copy = cookieHeader((await loginLocal(a.url, 'roamer')).cookies)
    t.equal((await asApi(b.url, copy)).status, 200, 'one deployment: the other gateway accepts the cookie')
    t.equal((await logout(a.url, copy)).status, 303)
    t.equal((await asApi(a.url, copy)).status, 401, 'refused at once where the logout happened')
    // 0: a request in flight when B's refresh saw the logout is cut off.
    t.equal(await eventually(async () => await asApi(b.url, copy).then((res) => res.status, () => 0), 401), 401, 'refused by the other gateway within its refresh')
  })
} else {
  t.comment('TEST_DATABASE_URL not set: the two-gateway PostgreSQL logout test did not run')
}

t.test('SECRET_KEY rotation keeps sessions, then retires the old key', async (t) => {
  // Rotation happens within one deployment: every instance below uses the same database.
  const dir = mkdtempSync(join(tmpdir(), 'authgate-rotation-'))
  const database = await createTestDatabase(dir)
  const db = database.open()
  t.teardown(async () => { await db.close(); await database.drop(); rmSync(dir, { recursive: true, force: true }) })
  const before = await startGateway({ SECRET_KEY: OLD_KEY }, { upstream: upstream.url, db })
  const { cookies } = await loginLocal(before.url, 'rotating')
  await before.close()

  const during = await startGateway({ SECRET_KEY: NEW_KEY, SECRET_KEY_PREVIOUS: `${SECRET_KEY},${OLD_KEY}` }, { upstream: upstream.url, db })
  t.teardown(during.close)
  const res = await http(`${during.url}/api/x`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })
  t.equal(res.status, 200, 'old-key cookie accepted during rotation')
  t.equal(upstream.received.at(-1)?.headers['x-user'], 'rotating')
  const reissued = setCookies(res.headers).authgate
  t.ok(reissued, 'the cookie is re-encrypted with the new key on the way back')

  const after = await startGateway({ SECRET_KEY: NEW_KEY }, { upstream: upstream.url, db })
  t.teardown(after.close)
  t.equal((await http(`${after.url}/api/x`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } })).status, 401, 'old cookie refused once the old key is gone')
  t.equal((await http(`${after.url}/api/x`, { headers: { cookie: `authgate=${reissued!}`, accept: 'application/json' } })).status, 200, 'the re-encrypted cookie survives')
})

t.test('revoked and disabled users lose their sessions within the refresh interval', async (t) => {
  // The gateway's clock stands at the start of a second: the sign-ins below are issued in it.
  const clock = TestClock.atWholeSecond()
  const gw = await startGateway({}, { upstream: upstream.url, revocationRefreshMs: 50, clock })
  t.teardown(gw.close)
  const alice = (await loginLocal(gw.url, 'alice')).cookies
  const bob = (await loginLocal(gw.url, 'bob')).cookies
  // 0: a request in flight when the refresh saw the revocation is cut off (as a stream would be).
  const status = async (cookies: Record<string, string>): Promise<number> =>
    await http(`${gw.url}/api`, { headers: { cookie: cookieHeader(cookies), accept: 'application/json' } }).then((res) => res.status, () => 0)
  t.equal(await status(alice), 200)

  // The revocation comes in the next second (the cutoff itself refuses the sessions above, not only
  // their ended records), and the sign-in below falls into the revocation's own second.
  clock.advance(1000)
  await gw.users.revokeSessions('alice', new Date(clock.now()))
  await gw.users.setActive('bob', false)
  let aliceStatus = 200
  let bobStatus = 200
  for (let i = 0; i < 100 && (aliceStatus !== 401 || bobStatus !== 401); i++) {
    await sleep(20)
    aliceStatus = await status(alice)
    bobStatus = await status(bob)
  }
  t.equal(aliceStatus, 401, 'revoked session refused')
  t.equal(bobStatus, 401, 'disabled user refused')

  // Still the revocation's second (cookies carry whole seconds): a sign-in after it is not caught by it.
  const again = (await loginLocal(gw.url, 'alice')).cookies
  t.equal(await status(again), 200, 'a new sign-in right after revocation works')
  await gw.users.setActive('bob', true)
  // Not the clock: a few background refreshes (every 50 ms) of the revocation list, which must not revive bob.
  await sleep(200)
  t.equal(await status(bob), 401, 're-enabling does not revive old sessions')
})

t.test('a session ends at its expiry, by the gateway\'s clock, and the log says so', async (t) => {
  const clock = new TestClock()
  const logs = logCapture()
  const gw = await startGateway({ SESSION_MAX_AGE: '3600' }, { upstream: upstream.url, clock, logger: logs.logger })
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'mayfly')
  const cookie = cookieHeader(cookies)
  clock.advance(3599 * 1000)
  t.equal((await asApi(gw.url, cookie)).status, 200, 'a second before SESSION_MAX_AGE is over: signed in')
  t.notOk(logs.lines().some((line) => line.msg === 'session cookie refused'), 'nothing refused yet')
  clock.advance(1000)
  const refused = await asApi(gw.url, cookie)
  t.equal(refused.status, 401, 'at SESSION_MAX_AGE: signed out')
  const line = logs.lines().find((line) => line.msg === 'session cookie refused')
  t.match(line, { level: 30, reason: 'expired', reqId: refused.headers['x-request-id'] }, 'why, at info, with the request id')
  t.notMatch(JSON.stringify(logs.lines()), cookies.authgate!, 'the cookie itself is never logged')
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
