// SSO sessions are server-side sessions like local ones: a record per sign-in, ended by logout so
// that a copy of the cookie is refused; and they are bound to their deployment, the OIDC flow's
// transaction cookie included. Two gateways with the same SECRET_KEY, each on its own database,
// and a real OpenID Provider.
import t from 'tap'
import { CookieJar, fetchWithJar, signInThroughProvider } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, deliverToGateway, identityAtUpstream, ssoLogin, startSso, startSsoGateway } from '../support/sso.js'
import type { TestGateway } from '../support/gateway.js'

const upstream = await startUpstream()
const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: { alice: { preferred_username: 'alice', email: 'alice@example.test', email_verified: true, groups: [] } },
  endSession: false,
  password: 'pw'
})
// Staging and production: the same SECRET_KEY (the test default), separate databases.
const staging = await startSsoGateway(op.issuer, {}, upstream.url)
const production = await startSsoGateway(op.issuer, {}, upstream.url)
t.teardown(async () => { await staging.close(); await production.close(); await op.close(); await upstream.close() })

async function statusWith (gw: TestGateway, cookie: string): Promise<number> {
  const response = await fetch(`${gw.url}/whoami`, { headers: { cookie, accept: 'application/json' } })
  await response.text()
  return response.status
}

t.test('an SSO sign-in writes a session record; logout ends it and a copy of the cookie is refused', async (t) => {
  const jar = new CookieJar()
  t.equal((await ssoLogin(staging, jar, { login: 'alice', password: 'pw' })).status, 302)
  t.equal((await identityAtUpstream(staging, jar, upstream))?.user, 'alice')
  const rows = await staging.db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.login_method', 'sessions.ended_at']).where('users.username', '=', 'alice').execute()
  t.same(rows, [{ login_method: 'oidc', ended_at: null }], 'one record, method oidc, not ended')

  const copy = jar.cookieHeader(staging.url)!
  t.equal(await statusWith(production, copy), 401, 'another deployment with the same SECRET_KEY: not signed in')

  const logout = await fetchWithJar(jar, `${staging.url}/logout`, { headers: { 'sec-fetch-site': 'same-origin' } })
  t.equal(logout.status, 303)
  t.equal(await statusWith(staging, copy), 401, 'the copy taken before the logout is refused')
  const ended = await staging.db.kysely.selectFrom('sessions').select('ended_at').execute()
  t.ok(ended.every((row) => row.ended_at !== null), 'the record is ended')
})

t.test('a sign-in started at one deployment cannot be completed at another', async (t) => {
  const jar = new CookieJar()
  const { authorizeUrl } = await startSso(staging, jar)
  t.ok(authorizeUrl, 'staging sent the browser to the IdP with its transaction cookie')
  const back = await signInThroughProvider(authorizeUrl!, jar, { login: 'alice', password: 'pw' })
  // Both gateways are on 127.0.0.1: the browser sends staging's transaction cookie to production.
  const callback = await fetchWithJar(jar, deliverToGateway(production, back))
  const body = await callback.text()
  t.equal(callback.status, 400)
  t.match(body, /Error code: transaction-missing/, 'production cannot open staging\'s transaction cookie')
  t.equal(await identityAtUpstream(production, jar, upstream), undefined, 'not signed in at production')
})
