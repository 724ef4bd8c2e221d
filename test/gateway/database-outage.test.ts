// The database going away while the gateway runs (PostgreSQL, reached through a relay the test cuts:
// the shared server keeps serving every other test). Signed-in users keep being proxied on the cached
// revocation list, for REVOCATION_MAX_STALENESS at most, then refused with 503 (fail closed);
// sign-ins (local and SSO) answer a 503 page; logout still signs out, and the logout reaches the
// database once it is back; readiness says why; everything recovers without a restart.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import WebSocket from 'ws'
import { createPostgresSchema, startGateway, TEST_DATABASE_URL, type TestGateway } from '../support/gateway.js'
import { openDatabase } from '../../src/db/index.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'
import { eventually } from '../support/within.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { CookieJar } from '../support/browserless.js'
import { CLIENT_ID, CLIENT_SECRET, identityAtUpstream, oidcEnv, REDIRECT_URI, ssoLogin } from '../support/sso.js'

const REFRESH_MS = 100

type Logs = ReturnType<typeof logCapture>

const asApi = async (gw: TestGateway, cookie: string): Promise<Awaited<ReturnType<typeof http>>> =>
  await http(`${gw.url}/api/thing`, { headers: { cookie, accept: 'application/json' } })
const asPage = async (gw: TestGateway, cookie: string): Promise<Awaited<ReturnType<typeof http>>> =>
  await http(`${gw.url}/page`, { headers: { cookie, accept: 'text/html' } })
const forwardAuth = async (gw: TestGateway, cookie: string): Promise<number> =>
  (await http(`${gw.url}/_authgate/auth`, { headers: { cookie, 'x-forwarded-uri': '/x', 'x-forwarded-method': 'GET' } })).status
const readyz = async (gw: TestGateway): Promise<{ status: number, body: { status: string, checks: Record<string, string> } }> => {
  const res = await http(`${gw.url}/_authgate/readyz`)
  return { status: res.status, body: JSON.parse(res.body) }
}
async function discovered (gw: TestGateway): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if ((await readyz(gw)).body.checks.oidc === 'ok') return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}
/** A WebSocket through the gateway, or the HTTP status it got instead of 101. */
async function openSocket (gw: TestGateway, cookie: string): Promise<WebSocket | number> {
  const ws = new WebSocket(gw.url.replace(/^http/, 'ws') + '/socket', { headers: { cookie } })
  return await new Promise((resolve, reject) => {
    ws.once('open', () => { resolve(ws) })
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0) })
    ws.once('error', reject)
  })
}
const linesWith = (logs: Logs, msg: RegExp): Array<Record<string, unknown>> => logs.lines().filter((l) => typeof l.msg === 'string' && msg.test(l.msg))

/** A page that says the sign-in cannot happen now: a 503 the user can act on, nothing internal. */
function assertUnavailablePage (t: Test, res: { status: number, headers: Record<string, unknown>, body: string }, what: string): void {
  t.equal(res.status, 503, `${what}: 503`)
  t.match(String(res.headers['content-type']), /^text\/html/, `${what}: a page`)
  t.equal(res.headers['cache-control'], 'no-store', `${what}: not cached`)
  t.match(res.body, /cannot reach its database/, `${what}: says why`)
  t.match(res.body, /[Tt]ry again/, `${what}: and what to do`)
  t.notMatch(res.body, /\bat \S+ \(|node_modules|ECONNREFUSED|Connection terminated|SQLITE_|stack/i, `${what}: nothing internal`)
}

async function gatewayThroughRelay (t: Test, env: Record<string, string>, upstream: { url: string }): Promise<{ gw: TestGateway, relay: TcpProxy, logs: Logs, schema: Awaited<ReturnType<typeof createPostgresSchema>> }> {
  const schema = await createPostgresSchema()
  const target = new URL(TEST_DATABASE_URL!)
  const relay = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
  const db = openDatabase(relay.through(TEST_DATABASE_URL!), { schema: schema.schema })
  const logs = logCapture('info')
  const gw = await startGateway(env, { db, upstream: upstream.url, revocationRefreshMs: REFRESH_MS, logger: logs.logger })
  t.teardown(async () => { await gw.close(); await db.close(); await relay.close(); await schema.drop() })
  return { gw, relay, logs, schema }
}

if (TEST_DATABASE_URL === undefined) {
  t.comment('TEST_DATABASE_URL not set: the database outage tests did not run')
} else {
  const upstream = await startUpstream()
  t.teardown(upstream.close)

  t.test('PostgreSQL unreachable: sessions keep working, sign-ins get a 503 page, logout works, all recovers', async (t) => {
    const op = await startOidcProvider({
      clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
      accounts: { sso: { preferred_username: 'sso-user', name: 'SSO User', email: 'sso@example.test', email_verified: true } },
      endSession: false,
      refreshTokens: true
    })
    t.teardown(op.close)
    // SSO sessions re-validated every second: they come due during the outage.
    const { gw, relay, logs, schema } = await gatewayThroughRelay(t, oidcEnv(op.issuer, { AUTH_METHOD: 'both', OIDC_REFRESH_INTERVAL: '1' }) as Record<string, string>, upstream)
    t.ok(await discovered(gw), 'OIDC discovery done')

    const alice = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
    const leaver = cookieHeader((await loginLocal(gw.url, 'leaver')).cookies)
    t.equal((await asApi(gw, alice)).status, 200, 'signed in before the outage')
    const ssoJar = new CookieJar()
    t.equal((await ssoLogin(gw, ssoJar, { login: 'sso', password: 'pw' })).status, 302, 'SSO works before the outage')

    relay.cut()
    t.ok(await eventually(() => linesWith(logs, /revocation refresh failed/).length >= 2, 30_000), 'refreshes fail')
    const warning = linesWith(logs, /revocation refresh failed/)[0]!
    t.equal(warning.level, 40, 'each failed refresh is a warning')
    t.match(warning, { maxStalenessSeconds: 300 }, 'which says how long sessions are still accepted')

    const proxied = await asApi(gw, alice)
    t.equal(proxied.status, 200, 'a signed-in user is still proxied')
    t.equal(upstream.received.at(-1)?.headers['x-user'], 'alice', 'as alice')
    t.equal((await asPage(gw, alice)).status, 200, 'pages too')
    t.equal(await forwardAuth(gw, alice), 200, 'forward-auth too')
    const requests = 5
    for (let i = 0; i < requests; i++) {
      t.equal((await identityAtUpstream(gw, ssoJar, upstream))?.user, 'sso-user', `an SSO session due for re-validation is proxied too (${i + 1})`)
    }
    const postponed = linesWith(logs, /re-validation: the database is unavailable/)
    t.ok(postponed.length >= 1, 'its re-validation is put off, with a warning')
    t.ok(postponed.length < requests, 'once per interval, not at every request')

    const page = await http(`${gw.url}/login`)
    t.equal(page.status, 200, 'the login page still shows')
    const form = new URLSearchParams({ username: 'newcomer', csrf_token: csrfTokenFrom(page.body), next: '/' })
    const local = await http(`${gw.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(setCookies(page.headers)), accept: 'text/html' },
      body: form.toString()
    })
    assertUnavailablePage(t, local, 'local sign-in')
    t.notOk(setCookies(local.headers).authgate, 'no session cookie')

    const sso = await ssoLogin(gw, new CookieJar(), { login: 'sso', password: 'pw' })
    assertUnavailablePage(t, { status: sso.status, headers: Object.fromEntries(sso.headers), body: await sso.text() }, 'SSO callback')

    const out = await http(`${gw.url}/logout`, { method: 'POST', headers: { cookie: leaver, origin: gw.url } })
    t.equal(out.status, 303, 'logout answers as always')
    t.equal(out.headers.location, '/login?signed_out=1')
    t.equal(setCookies(out.headers).authgate, '', 'and clears the cookie')
    t.equal((await asApi(gw, leaver)).status, 401, 'a copy of the signed-out cookie is refused here at once')
    t.ok(linesWith(logs, /logout.*database/i).length > 0, 'the log says the logout reaches the database later')

    const notReady = await readyz(gw)
    t.match(notReady.body.checks.database ?? '', /^failed: /, 'readiness names the database problem')
    t.equal(notReady.status, 200, 'but stays ready while sessions are served (sign-ins refused, sessions not)')
    t.match(notReady.body.checks.revocations, /not refreshed for \d+s.*300s/, 'and how stale the revocation list is')
    t.same(logs.lines().filter((l) => Number(l.level) >= 50).map((l) => l.msg), [], 'nothing logged as an error: it is all expected, and handled')

    relay.restore()
    t.ok(await eventually(() => linesWith(logs, /revocation list refreshed again/).length > 0, 30_000), 'recovered without a restart')
    t.equal((await readyz(gw)).body.checks.database, 'ok', 'readiness says so')
    t.equal((await loginLocal(gw.url, 'newcomer')).response.status, 303, 'local sign-in works again')
    t.equal((await ssoLogin(gw, new CookieJar(), { login: 'sso', password: 'pw' })).status, 302, 'SSO sign-in works again')
    t.equal((await asApi(gw, alice)).status, 200, 'alice never had to sign in again')
    t.equal((await asApi(gw, leaver)).status, 401, 'the signed-out cookie stays refused')

    // Another replica, reading the same database afresh, refuses it too: the logout was written.
    const other = openDatabase(TEST_DATABASE_URL!, { schema: schema.schema })
    const replica = await startGateway({}, { db: other, upstream: upstream.url })
    t.teardown(async () => { await replica.close(); await other.close() })
    t.equal((await asApi(replica, alice)).status, 200, 'alice is signed in on another replica')
    t.equal((await asApi(replica, leaver)).status, 401, 'the logout made during the outage reached every replica')
  })

  t.test('past REVOCATION_MAX_STALENESS sessions are refused (503), and accepted again once the database answers', async (t) => {
    const wsUpstream = await startWsUpstream()
    t.teardown(wsUpstream.close)
    const { gw, relay, logs } = await gatewayThroughRelay(t, { REVOCATION_MAX_STALENESS: '15' }, wsUpstream)
    const alice = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
    t.equal((await asApi(gw, alice)).status, 200)
    const socket = await openSocket(gw, alice)
    t.type(socket, WebSocket, 'a WebSocket open before the outage')
    const closed = once(socket as WebSocket, 'close')

    relay.cut()
    t.ok(await eventually(() => linesWith(logs, /refusing sessions/).length > 0, 60_000), 'the bound is crossed')
    const received = wsUpstream.requests.length
    const crossed = linesWith(logs, /refusing sessions/)
    t.equal(crossed.length, 1, 'said once')
    t.equal(crossed[0]!.level, 50, 'as an error')
    const [code, reason] = await closed as [number, Buffer]
    t.same({ code, reason: reason.toString() }, { code: 1013, reason: 'sessions cannot be checked now' }, 'the open WebSocket is closed: try again later')
    t.equal(await openSocket(gw, alice), 503, 'a new one is refused')

    const api = await asApi(gw, alice)
    t.equal(api.status, 503, 'an API request: 503')
    t.match(JSON.parse(api.body), { error: 'sessions_unavailable' })
    t.ok(api.headers['retry-after'], 'with Retry-After')
    t.notOk(setCookies(api.headers).authgate !== undefined, 'the cookie is left alone: the session is not over')
    const page = await asPage(gw, alice)
    t.equal(page.status, 503, 'a navigation: 503')
    t.match(page.body, /cannot check sessions|cannot reach its database/)
    t.equal(await forwardAuth(gw, alice), 503, 'forward-auth: 503')
    t.equal(wsUpstream.requests.length, received, 'nothing reached the upstream')
    const ready = await readyz(gw)
    t.equal(ready.status, 503, 'not ready')
    t.match(ready.body.checks.revocations, /REVOCATION_MAX_STALENESS/)

    relay.restore()
    t.ok(await eventually(() => linesWith(logs, /revocation list refreshed again/).length > 0, 30_000), 'recovered')
    t.equal((await asApi(gw, alice)).status, 200, 'the same cookie works again: nobody had to sign in again')
    const again = await openSocket(gw, alice)
    t.type(again, WebSocket, 'and WebSockets open again')
    ;(again as WebSocket).close()
    t.equal((await readyz(gw)).status, 200, 'ready again')
  })
}
