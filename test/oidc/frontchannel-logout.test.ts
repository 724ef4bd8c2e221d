// Front-channel logout: GET /auth/oidc/frontchannel-logout?iss=&sid= ends the gateway sessions that
// IdP session opened (and only those), refuses a wrong or missing iss and an unknown sid with 400
// (ending nothing), and answers a page only the IdP's origin may frame, while every other gateway
// page keeps frame-ancestors 'none'.
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

t.test('local sign-in only: the route says no', async (t) => {
  const { startGateway } = await import('../support/gateway.js')
  const local = await startGateway({}, { upstream: upstream.url })
  t.teardown(local.close)
  const response = await fetch(`${local.url}/auth/oidc/frontchannel-logout?iss=${encodeURIComponent(op.issuer)}&sid=x`)
  t.equal(response.status, 400)
  const back = await fetch(`${local.url}/auth/oidc/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'logout_token=x' })
  t.equal(back.status, 400)
})
