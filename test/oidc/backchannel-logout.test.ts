// Back-channel logout: signing out at the IdP (node-oidc-provider's end-session, which posts a
// logout token) ends that user's gateway sessions on two replicas sharing PostgreSQL, open
// WebSockets included, and no one else's; and every forged, stale, replayed or malformed logout
// token answers 400 and ends nothing.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import { CookieJar, followEndSession } from '../support/browserless.js'
import { startOidcProvider, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { CLIENT_ID, CLIENT_SECRET, oidcEnv, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import { createPostgresSchema, startGateway, TEST_DATABASE_URL, type TestGateway } from '../support/gateway.js'
import { within } from '../support/within.js'
import { logCapture } from '../support/log-capture.js'

const BACKCHANNEL_URI = 'http://localhost:8080/auth/oidc/backchannel-logout'
const EVENT = 'http://schemas.openid.net/event/backchannel-logout'

const upstream = await startWsUpstream()
t.teardown(upstream.close)

async function provider (): Promise<OidcProviderFixture> {
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], backchannel_logout_uri: BACKCHANNEL_URI, backchannel_logout_session_required: true }],
    accounts: {
      alice: { preferred_username: 'alice', email: 'alice@example.test', email_verified: true },
      bob: { preferred_username: 'bob', email: 'bob@example.test', email_verified: true }
    },
    backchannelLogout: true
  })
  t.teardown(op.close)
  return op
}

/** Signs in through the IdP with `jar` and takes the gateway cookie out of it (a replica on the same host would replace it). */
async function signIn (gw: TestGateway, jar: CookieJar, login: string): Promise<string> {
  const response = await ssoLogin(gw, jar, { login, password: 'x' })
  if (response.status !== 302) throw new Error(`sign-in answered ${response.status}`)
  const value = jar.get(gw.url, 'authgate')
  if (value === undefined) throw new Error('no session cookie')
  jar.delete('authgate')
  return `authgate=${value}`
}

const status = async (gw: TestGateway, cookie: string): Promise<number> =>
  await fetch(`${gw.url}/whoami`, { headers: { cookie, accept: 'application/json' } }).then(async (r) => { await r.text(); return r.status }, () => 0)

async function becomes (gw: TestGateway, cookie: string, expected: number, ms = 5000): Promise<number> {
  const deadline = Date.now() + ms
  for (;;) {
    const now = await status(gw, cookie)
    if (now === expected || Date.now() > deadline) return now
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const post = async (gw: TestGateway, body: string, type = 'application/x-www-form-urlencoded'): Promise<{ status: number, cacheControl: string | null, body: string }> => {
  const response = await fetch(`${gw.url}/auth/oidc/backchannel-logout`, { method: 'POST', headers: { 'content-type': type }, body })
  return { status: response.status, cacheControl: response.headers.get('cache-control'), body: await response.text() }
}
const form = (token: string): string => new URLSearchParams({ logout_token: token }).toString()

if (TEST_DATABASE_URL !== undefined) {
  t.test('signing out at the IdP ends that user\'s sessions on both replicas, WebSockets included, and no one else\'s', async (t) => {
    const op = await provider()
    const schema = await createPostgresSchema()
    const [dbA, dbB] = [schema.open(), schema.open()]
    const a = await startSsoGateway(op.issuer, {}, upstream.url, { db: dbA, revocationRefreshMs: 50 })
    const b = await startSsoGateway(op.issuer, {}, upstream.url, { db: dbB, revocationRefreshMs: 50 })
    t.teardown(async () => { await a.close(); await b.close(); await dbA.close(); await dbB.close(); await schema.drop() })
    // The IdP posts to the registered URI; here it reaches replica A only. B learns from the database.
    op.outgoing = (url) => url.href === BACKCHANNEL_URI ? new URL('/auth/oidc/backchannel-logout', a.url) : url

    const aliceJar = new CookieJar()
    const aliceOnA = await signIn(a, aliceJar, 'alice')
    const aliceOnB = await signIn(b, aliceJar, 'alice') // the same IdP session: no second login form
    const bobJar = new CookieJar()
    const bobOnB = await signIn(b, bobJar, 'bob')
    for (const [gw, cookie, who] of [[a, aliceOnA, 'alice on A'], [b, aliceOnB, 'alice on B'], [b, bobOnB, 'bob on B'], [a, bobOnB, 'bob on A']] as const) {
      t.equal(await status(gw, cookie), 200, `${who}: signed in`)
    }
    const rows = await dbA.kysely.selectFrom('sessions').select(['oidc_issuer', 'idp_session_id']).execute()
    t.ok(rows.every((row) => row.oidc_issuer === op.issuer && typeof row.idp_session_id === 'string'), 'every session recorded the issuer and the ID token\'s sid')

    const socket = new WebSocket(`${b.url.replace('http', 'ws')}/sink`, { headers: { cookie: aliceOnB } })
    await within(new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) }), 5000, 'the WebSocket opens')
    const closed = new Promise<number>((resolve) => { socket.once('close', (code) => { resolve(code) }) })

    // At the IdP: end-session, "sign me out" confirmed; the provider posts its logout token to A.
    await followEndSession(`${op.issuer}/session/end?client_id=${CLIENT_ID}`, aliceJar)
    t.same(op.backchannel, [{ clientId: CLIENT_ID, ok: true }], 'the provider\'s back-channel call was answered 200')

    t.equal(await status(a, aliceOnA), 401, 'A refuses alice at once')
    t.equal(await becomes(b, aliceOnB, 401), 401, 'B refuses alice within its revocation refresh')
    t.equal(await becomes(a, aliceOnB, 401), 401, 'and A the cookie B issued')
    t.ok(await within(closed, 5000, 'the WebSocket is closed'), 'alice\'s open WebSocket on B is closed')
    t.equal(await status(b, bobOnB), 200, 'bob is still signed in on B')
    t.equal(await status(a, bobOnB), 200, 'and on A')
    const metrics = await fetch(`${a.url}/_authgate/metrics`).then(async (r) => await r.text())
    t.match(metrics, /authgate_idp_logouts_total\{channel="back",outcome="accepted"\} 1/)
    t.match(metrics, /authgate_idp_logout_sessions_ended_total\{channel="back"\} 2/)
  })
} else {
  t.comment('TEST_DATABASE_URL not set: the two-replica back-channel logout test did not run')
}

t.test('logout tokens: every forgery answers 400 and ends nothing; a valid one ends the subject\'s sessions, once', async (t) => {
  const op = await provider()
  const log = logCapture()
  const gw = await startSsoGateway(op.issuer, { LOG_LEVEL: 'info' }, upstream.url, { logger: log.logger })
  t.teardown(gw.close)
  const alice = await signIn(gw, new CookieJar(), 'alice')
  const alicesSid = (await gw.db.kysely.selectFrom('sessions').select('idp_session_id').executeTakeFirstOrThrow()).idp_session_id!
  const now = Math.floor(Date.now() / 1000)
  const claims = (extra: JWTPayload = {}): JWTPayload => ({ iss: op.issuer, aud: CLIENT_ID, iat: now, jti: randomUUID(), sub: 'alice', events: { [EVENT]: {} }, ...extra })
  const sign = async (payload: JWTPayload, key: Parameters<SignJWT['sign']>[0] = op.signingKey.privateKey, header: Record<string, unknown> = {}): Promise<string> =>
    await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, typ: 'logout+jwt', ...header } as never).sign(key)
  const without = (name: string): JWTPayload => Object.fromEntries(Object.entries(claims()).filter(([k]) => k !== name))
  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const foreign = await generateKeyPair('RS256')

  // Each with the reason the log must give: refused for that reason, not by accident.
  const forged: Record<string, [string, RegExp]> = {
    'signed with a foreign key (the provider\'s kid)': [form(await sign(claims(), foreign.privateKey)), /signature verification failed/],
    'signed with a foreign key (its own kid)': [form(await sign(claims(), foreign.privateKey, { kid: 'attacker' })), /no applicable key found/],
    'alg none': [form(`${b64({ alg: 'none', typ: 'logout+jwt' })}.${b64(claims())}.`), /alg/],
    'HS256 keyed with the client secret': [form(await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(CLIENT_SECRET))), /"alg" \(Algorithm\) Header Parameter value not allowed/],
    'wrong aud': [form(await sign(claims({ aud: 'another-client' }))), /claim aud/],
    'wrong iss': [form(await sign(claims({ iss: 'http://127.0.0.1:1' }))), /claim iss/],
    'nonce present': [form(await sign(claims({ nonce: 'n-0S6_WzA2Mj' }))), /nonce/],
    'events missing': [form(await sign(without('events'))), /no events claim/],
    'events without the back-channel member': [form(await sign(claims({ events: { 'http://schemas.openid.net/event/other': {} } }))), /lacks the back-channel logout event/],
    'the back-channel event not an object': [form(await sign(claims({ events: { [EVENT]: 'yes' } }))), /lacks the back-channel logout event/],
    'stale iat (11 minutes and more ago)': [form(await sign(claims({ iat: now - 11 * 60 - 61 }))), /claim iat.*too far in the past/],
    'iat in the future': [form(await sign(claims({ iat: now + 600 }))), /claim iat.*in the past/],
    'iat missing': [form(await sign(without('iat'))), /claim iat/],
    'jti missing': [form(await sign(without('jti'))), /claim jti/],
    'neither sub nor sid': [form(await sign(without('sub'))), /neither sub nor sid/],
    'expired (exp)': [form(await sign(claims({ exp: now - 120 }))), /claim exp/],
    'malformed JWT': [form('not.a.jwt'), /ERR_JWS_INVALID|ERR_JWT_INVALID/],
    'missing parameter': ['', /no logout_token/],
    'empty parameter': ['logout_token=', /no logout_token/],
    'logout_token twice': [`${form(await sign(claims()))}&${form(await sign(claims()))}`, /more than once/],
    'oversized body': [form('x'.repeat(20_000)), /unreadable request/]
  }
  for (const [what, [body, reason]] of Object.entries(forged)) {
    const before = log.lines().length
    const response = await post(gw, body)
    t.equal(response.status, 400, what)
    t.same(JSON.parse(response.body), { error: 'invalid_request' }, `${what}: invalid_request`)
    const refusal = log.lines().slice(before).find((line) => line.msg === 'back-channel logout refused')
    t.match(String(refusal?.reason), reason, `${what}: the log says why`)
  }
  const tokenish = /eyJ[\w-]{10,}\.eyJ/
  t.notOk(log.lines().some((line) => tokenish.test(JSON.stringify(line))), 'no token in the log')
  const asJson = await post(gw, JSON.stringify({ logout_token: await sign(claims()) }), 'application/json')
  t.equal(asJson.status, 400, 'a JSON body, even holding a valid token')
  t.equal((await fetch(`${gw.url}/auth/oidc/backchannel-logout`)).status, 405, 'GET is not the back-channel')
  t.equal(await status(gw, alice), 200, 'after all of them, alice is still signed in')
  const metrics = await fetch(`${gw.url}/_authgate/metrics`).then(async (r) => await r.text())
  t.match(metrics, new RegExp(`authgate_idp_logouts_total\\{channel="back",outcome="refused"\\} ${Object.keys(forged).length + 1}`))
  t.notOk(log.lines().some((line) => line.audit !== undefined && line.audit !== 'sign-in' && line.audit !== 'user-created'), 'no sessions-ended audit line for any of them')

  await t.test('a sid token ends that IdP session only', async (t) => {
    const other = await signIn(gw, new CookieJar(), 'alice') // another browser: another IdP session
    const bySid = await post(gw, form(await sign(claims({ sub: undefined, sid: alicesSid }))))
    t.equal(bySid.status, 200)
    t.equal(bySid.cacheControl, 'no-store')
    t.equal(await status(gw, alice), 401, 'the session of that sid ended')
    t.equal(await status(gw, other), 200, 'alice\'s session from another IdP session did not')
  })

  await t.test('a sub token ends every session of that subject; its jti is refused the second time', async (t) => {
    const first = await signIn(gw, new CookieJar(), 'alice')
    const bob = await signIn(gw, new CookieJar(), 'bob')
    const token = form(await sign(claims()))
    const accepted = await post(gw, token)
    t.equal(accepted.status, 200)
    t.equal(accepted.cacheControl, 'no-store')
    t.equal(await status(gw, first), 401, 'alice signed out')
    t.equal(await status(gw, bob), 200, 'bob not')
    const audit = log.lines().filter((line) => line.audit === 'sessions-ended').at(-1)
    t.match(audit, { audit: 'sessions-ended', user: 'alice', by: 'idp-backchannel', method: 'oidc', sessions: 2 }, 'audited: both of alice\'s open sessions (this one and the other browser\'s)')
    const again = await signIn(gw, new CookieJar(), 'alice')
    const replay = await post(gw, token)
    t.equal(replay.status, 400, 'the same jti again')
    t.same(JSON.parse(replay.body), { error: 'invalid_request' })
    t.equal(await status(gw, again), 200, 'the replay ended nothing')
    const used = await gw.db.kysely.selectFrom('logout_token_ids').selectAll().execute()
    t.equal(used.length, 2, 'the ids of the two accepted tokens are kept (refused ones are not)')
    t.ok(used.every((row) => Number(row.expires_at) > Date.now() + 10 * 60_000 && Number(row.expires_at) < Date.now() + 12 * 60_000), 'until they would be stale anyway')
  })

  await t.test('a token for a subject without sessions is accepted and ends nothing', async (t) => {
    const response = await post(gw, form(await sign(claims({ sub: 'nobody' }))))
    t.equal(response.status, 200)
  })
})

t.test('no provider to check a token with (SSO off, or its only provider not discovered): 400, and the log says which', async (t) => {
  const token = form('eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln')
  const refusalOf = async (gw: TestGateway, log: ReturnType<typeof logCapture>): Promise<unknown> => {
    const response = await post(gw, token)
    t.equal(response.status, 400)
    return log.lines().find((line) => line.msg === 'back-channel logout refused')?.reason
  }

  const localLog = logCapture()
  const local = await startGateway({ LOG_LEVEL: 'info' }, { upstream: upstream.url, logger: localLog.logger })
  t.teardown(local.close)
  t.equal(await refusalOf(local, localLog), 'SSO is not configured', 'AUTH_METHOD=local')

  // An issuer nothing listens at: discovery fails at once, and again at the token's arrival.
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const { port } = closed.address() as AddressInfo
  await new Promise<void>((resolve) => closed.close(() => { resolve() }))
  const undiscoveredLog = logCapture()
  const undiscovered = await startGateway(oidcEnv(`http://127.0.0.1:${port}`, { AUTH_METHOD: 'both', LOG_LEVEL: 'info' }), { upstream: upstream.url, logger: undiscoveredLog.logger })
  t.teardown(undiscovered.close)
  t.match(await refusalOf(undiscovered, undiscoveredLog), /^the provider is not discovered \(discovery of http:\/\/127\.0\.0\.1:\d+\/ /, 'the only provider, not discovered')
})
