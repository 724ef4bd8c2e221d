// Front-channel logout: GET /auth/oidc/frontchannel-logout?iss=&sid= ends the gateway sessions that
// IdP session opened (and only those), refuses a wrong or missing iss and an unknown sid with 400
// (ending nothing), and answers a page only the IdP's origin may frame, while every other gateway
// page keeps frame-ancestors 'none'. With an IdP that sends no sid (LemonLDAP::NG sends the subject
// instead), the subject ends that subject's sid-less sessions only; with one that does, a subject is
// never taken for a sid.
import t from 'tap'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import type { TestGateway } from '../support/gateway.js'

const upstream = await startUpstream()
t.teardown(upstream.close)
// node-oidc-provider puts `sid` in ID tokens for clients that require it at back-channel logout.
const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], backchannel_logout_uri: 'http://localhost:8080/auth/oidc/backchannel-logout', backchannel_logout_session_required: true }],
  accounts: { alice: { preferred_username: 'alice' }, bob: { preferred_username: 'bob' } },
  backchannelLogout: true
})
t.teardown(op.close)
const gw = await startSsoGateway(op.issuer, {}, upstream.url)
t.teardown(gw.close)

const status = async (gateway: TestGateway, jar: CookieJar): Promise<number> => {
  const response = await fetchWithJar(jar, `${gateway.url}/whoami`, { headers: { accept: 'application/json' } })
  await response.text()
  return response.status
}
async function signedIn (login: string): Promise<{ jar: CookieJar, sid: string }> {
  const jar = new CookieJar()
  const rows = async (): Promise<Array<{ id: string, idp_session_id: string | null }>> => await gw.db.kysely.selectFrom('sessions').select(['id', 'idp_session_id']).execute()
  const before = new Set((await rows()).map((row) => row.id))
  t.equal((await ssoLogin(gw, jar, { login, password: 'x' })).status, 302)
  const added = (await rows()).filter((row) => !before.has(row.id))
  if (added.length !== 1 || added[0]!.idp_session_id === null) throw new Error('expected one new session, with a sid')
  return { jar, sid: added[0]!.idp_session_id }
}
const frontchannel = async (query: Record<string, string>, jar = new CookieJar()): Promise<Response> =>
  await fetchWithJar(jar, `${gw.url}/auth/oidc/frontchannel-logout?${new URLSearchParams(query).toString()}`)

t.test('the right iss and sid end that IdP session\'s gateway sessions, and only those', async (t) => {
  const alice = await signedIn('alice')
  const aliceElsewhere = await signedIn('alice')
  const bob = await signedIn('bob')
  t.not(alice.sid, aliceElsewhere.sid, 'two browsers, two IdP sessions')

  const refused: Record<string, Record<string, string>> = {
    'no iss': { sid: alice.sid },
    'no sid': { iss: op.issuer },
    'another issuer': { iss: 'http://127.0.0.1:1', sid: alice.sid },
    'the issuer with a trailing slash': { iss: op.issuer + '/', sid: alice.sid },
    'an unknown sid': { iss: op.issuer, sid: 'not-a-session-of-ours' },
    nothing: {}
  }
  for (const [what, query] of Object.entries(refused)) {
    const response = await frontchannel(query)
    t.equal(response.status, 400, what)
    t.same(await response.json(), { error: 'invalid_request' }, what)
  }
  const twice = await fetch(`${gw.url}/auth/oidc/frontchannel-logout?iss=${encodeURIComponent(op.issuer)}&sid=${alice.sid}&sid=${alice.sid}`)
  t.equal(twice.status, 400, 'sid given twice')
  t.equal(await status(gw, alice.jar), 200, 'after the refusals alice is still signed in')

  // As the IdP's iframe loads it: with this browser's cookie, when the browser sends it.
  const response = await frontchannel({ iss: op.issuer, sid: alice.sid }, alice.jar)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/html/)
  t.match(await response.text(), /Signed out/)
  t.equal(response.headers.get('cache-control'), 'no-store')
  const csp = response.headers.get('content-security-policy') ?? ''
  t.match(csp, new RegExp(`frame-ancestors ${new URL(op.issuer).origin}(;|$)`), 'only the IdP\'s origin may frame it')
  t.notMatch(csp, /frame-ancestors 'none'/)
  t.equal(response.headers.get('x-frame-options'), null, 'no X-Frame-Options to block it')
  t.equal(alice.jar.get(gw.url, 'authgate'), undefined, 'this browser\'s session cookie is cleared')

  t.equal(await status(gw, alice.jar), 401, 'that session ended')
  t.equal(await status(gw, aliceElsewhere.jar), 200, 'alice\'s session from another IdP session did not')
  t.equal(await status(gw, bob.jar), 200, 'nor bob\'s')

  const again = await frontchannel({ iss: op.issuer, sid: alice.sid })
  t.equal(again.status, 200, 'the same sid again (the IdP may retry): still a known IdP session, nothing more to end')

  const login = await fetch(`${gw.url}/login?error=x`, { redirect: 'manual' })
  t.match(login.headers.get('content-security-policy'), /frame-ancestors 'none'/, 'the login page still may not be framed')
  t.equal(login.headers.get('x-frame-options'), 'DENY')
  const refusal = await frontchannel({ iss: op.issuer, sid: 'unknown' })
  t.match(refusal.headers.get('content-security-policy'), /frame-ancestors 'none'/, 'nor a refusal')
  t.equal((await fetch(`${gw.url}/auth/oidc/frontchannel-logout`, { method: 'POST' })).status, 405, 'POST is not the front-channel')

  const metrics = await fetch(`${gw.url}/_authgate/metrics`).then(async (r) => await r.text())
  t.match(metrics, /authgate_idp_logouts_total\{channel="front",outcome="accepted"\} 2/)
  t.match(metrics, /authgate_idp_logouts_total\{channel="front",outcome="refused"\} 8/)
  t.match(metrics, /authgate_idp_logout_sessions_ended_total\{channel="front"\} 1/)
})

t.test('with an IdP that sends sids, a subject is never taken for a sid', async (t) => {
  const alice = await signedIn('alice')
  const { oidc_sub: sub } = await gw.db.kysely.selectFrom('users').select('oidc_sub').where('username', '=', 'alice').executeTakeFirstOrThrow()
  const response = await frontchannel({ iss: op.issuer, sid: sub! })
  t.equal(response.status, 400, 'alice\'s subject as the sid: refused')
  t.same(await response.json(), { error: 'invalid_request' })
  t.equal(await status(gw, alice.jar), 200, 'and alice is still signed in')
})

t.test('an IdP that sends no sid (LemonLDAP::NG): the subject as sid ends that subject\'s sid-less sessions, and only those', async (t) => {
  // Without backchannel_logout_session_required, node-oidc-provider puts no sid in ID tokens.
  const sidless = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: { carol: { preferred_username: 'carol' }, dave: { preferred_username: 'dave' } }
  })
  t.teardown(sidless.close)
  const gw2 = await startSsoGateway(sidless.issuer, {}, upstream.url)
  t.teardown(gw2.close)
  const sessionsOf = async (username: string): Promise<Array<{ id: string, idp_session_id: string | null, oidc_issuer: string | null }>> =>
    await gw2.db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id').select(['sessions.id', 'sessions.idp_session_id', 'sessions.oidc_issuer']).where('users.username', '=', username).execute()
  const signIn = async (login: string): Promise<CookieJar> => {
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw2, jar, { login, password: 'x' })).status, 302)
    return jar
  }
  const carol = await signIn('carol')
  const carolElsewhere = await signIn('carol')
  const dave = await signIn('dave')
  t.ok((await sessionsOf('carol')).every((row) => row.idp_session_id === null && row.oidc_issuer === sidless.issuer), 'no sid recorded, the issuer is')
  const subOf = async (username: string): Promise<string> =>
    (await gw2.db.kysely.selectFrom('users').select('oidc_sub').where('username', '=', username).executeTakeFirstOrThrow()).oidc_sub!
  const carolSub = await subOf('carol')
  // A session of carol's that did record a sid (as if the IdP had sent one then): the subject never reaches it.
  const carolUser = await gw2.db.kysely.selectFrom('users').select('id').where('username', '=', 'carol').executeTakeFirstOrThrow()
  const withSid = 'recorded-with-a-sid-0000000000000000000000000'
  await gw2.db.kysely.insertInto('sessions').values({ id: withSid, user_id: carolUser.id, login_method: 'oidc', created_at: new Date().toISOString(), expires_at: new Date(Date.now() + 3600_000).toISOString(), oidc_issuer: sidless.issuer, idp_session_id: 'idp-sid-1' }).execute()

  const at = async (query: Record<string, string>, jar = new CookieJar()): Promise<Response> =>
    await fetchWithJar(jar, `${gw2.url}/auth/oidc/frontchannel-logout?${new URLSearchParams(query).toString()}`)
  for (const [what, query] of Object.entries({
    'an unknown subject': { iss: sidless.issuer, sid: 'nobody' },
    'carol\'s subject from another issuer': { iss: op.issuer, sid: carolSub }
  })) {
    const response = await at(query)
    t.equal(response.status, 400, what)
    t.same(await response.json(), { error: 'invalid_request' }, what)
  }
  t.equal(await status(gw2, carol), 200, 'after the refusals carol is still signed in')

  const response = await at({ iss: sidless.issuer, sid: carolSub })
  t.equal(response.status, 200, 'carol\'s subject as the sid')
  t.match(await response.text(), /Signed out/)
  t.match(response.headers.get('content-security-policy'), new RegExp(`frame-ancestors ${new URL(sidless.issuer).origin}(;|$)`))
  t.equal(await status(gw2, carol), 401, 'carol\'s session ended')
  t.equal(await status(gw2, carolElsewhere), 401, 'and her other sid-less one (the IdP names no IdP session: all of the subject\'s go)')
  t.equal(await status(gw2, dave), 200, 'dave\'s did not')
  const rows = await sessionsOf('carol')
  t.equal(rows.find((row) => row.id === withSid)?.idp_session_id, 'idp-sid-1')
  t.equal((await gw2.db.kysely.selectFrom('sessions').select('ended_at').where('id', '=', withSid).executeTakeFirstOrThrow()).ended_at, null, 'the session that recorded a sid stays open')
  t.equal((await at({ iss: sidless.issuer, sid: carolSub })).status, 200, 'the IdP may retry')
  const byRecordedSid = await at({ iss: sidless.issuer, sid: 'idp-sid-1' })
  t.equal(byRecordedSid.status, 200, 'that one ends by its own sid')
  t.not((await gw2.db.kysely.selectFrom('sessions').select('ended_at').where('id', '=', withSid).executeTakeFirstOrThrow()).ended_at, null)

  const metrics = await fetch(`${gw2.url}/_authgate/metrics`).then(async (r) => await r.text())
  t.match(metrics, /authgate_idp_logouts_total\{channel="front",outcome="accepted"\} 3/)
  t.match(metrics, /authgate_idp_logouts_total\{channel="front",outcome="refused"\} 2/)
  t.match(metrics, /authgate_idp_logout_sessions_ended_total\{channel="front"\} 3/)
})

t.test('local sign-in only: the route says no', async (t) => {
  const { startGateway } = await import('../support/gateway.js')
  const local = await startGateway({}, { upstream: upstream.url })
  t.teardown(local.close)
  const response = await fetch(`${local.url}/auth/oidc/frontchannel-logout?iss=${encodeURIComponent(op.issuer)}&sid=x`)
  t.equal(response.status, 400)
  const back = await fetch(`${local.url}/auth/oidc/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout_token=x' })
  t.equal(back.status, 400)
})
