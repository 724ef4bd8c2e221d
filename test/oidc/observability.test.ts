// SSO as the operator sees it: audit events (sign-in, account created or linked, admin granted by
// the IdP group and removed with it, refusals) and metrics (sign-ins and refusals by method and
// reason, the IdP's call latency by endpoint and outcome), against the real OpenID Provider.
import t from 'tap'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { startGateway } from '../support/gateway.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, oidcEnv, ssoLogin, startSsoGateway } from '../support/sso.js'
import { logCapture } from '../support/log-capture.js'
import { scrape } from '../support/metrics.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: {
    alice: { preferred_username: 'alice', name: 'Alice', email: 'alice@example.test', email_verified: true, groups: ['staff', 'tt-admins'] },
    bob: { preferred_username: 'bob', name: 'Bob', email: 'bob@example.test', email_verified: true, groups: [] },
    carol: { preferred_username: 'carol', name: 'Carol', email: 'carol@example.test', email_verified: true, groups: [] }
  },
  password: 'pw'
})
t.teardown(() => op.close())

type Line = Record<string, unknown>
const core = ({ audit, user, by, method, reason, admin }: Line): Line =>
  Object.fromEntries(Object.entries({ audit, user, by, method, reason, admin }).filter(([, v]) => v !== undefined))

t.test('SSO sign-ins, admin by group, linking and refusals: audited and counted', async (t) => {
  const capture = logCapture('info')
  const gw = await startSsoGateway(op.issuer, { OIDC_ADMIN_GROUP: 'tt-admins', ADMIN_USERNAMES: '' }, upstream.url, { logger: capture.logger })
  t.teardown(() => gw.close())
  const audit = (from: number): Line[] => capture.lines().slice(from).filter((l) => l.audit !== undefined)
  const metrics = async (): Promise<Awaited<ReturnType<typeof scrape>>> => await scrape(gw.url + '/_authgate/metrics')

  t.equal((await metrics()).value('authgate_idp_request_duration_seconds_count', { endpoint: 'discovery', outcome: 'ok' }), 1, 'discovery, timed')

  let from = capture.lines().length
  const signedIn = await ssoLogin(gw, new CookieJar(), { login: 'alice', password: 'pw' })
  t.equal(signedIn.status, 302)
  const events = audit(from)
  t.same(events.map(core), [
    { audit: 'user-created', user: 'alice', by: 'user', method: 'oidc', admin: true },
    { audit: 'admin-granted', user: 'alice', by: 'oidc-group', method: 'oidc' },
    { audit: 'sign-in', user: 'alice', by: 'user', method: 'oidc', admin: true }
  ])
  for (const event of events) {
    t.equal(event.ip, '127.0.0.1')
    t.equal(event.reqId, signedIn.headers.get('x-request-id'), 'the callback\'s request id')
  }
  const afterSignIn = await metrics()
  t.equal(afterSignIn.value('authgate_logins_total', { method: 'oidc' }), 1)
  for (const endpoint of ['token', 'jwks', 'userinfo']) {
    t.ok(afterSignIn.value('authgate_idp_request_duration_seconds_count', { endpoint, outcome: 'ok' })! >= 1, `${endpoint} call timed`)
  }
  t.ok(afterSignIn.value('authgate_idp_request_duration_seconds_sum', { endpoint: 'token', outcome: 'ok' })! > 0)

  op.accounts.get('alice')!.groups = ['staff']
  from = capture.lines().length
  t.equal((await ssoLogin(gw, new CookieJar(), { login: 'alice', password: 'pw' })).status, 302)
  t.same(audit(from).map(core), [
    { audit: 'admin-revoked', user: 'alice', by: 'oidc-mapping', method: 'oidc' },
    { audit: 'sign-in', user: 'alice', by: 'user', method: 'oidc', admin: false }
  ], 'removed from the group at the IdP: admin removed at the next sign-in')

  await gw.users.create({ username: 'carol' })
  from = capture.lines().length
  t.equal((await ssoLogin(gw, new CookieJar(), { login: 'carol', password: 'pw' })).status, 302)
  t.same(audit(from).map(core), [
    { audit: 'sso-linked', user: 'carol', by: 'user', method: 'oidc' },
    { audit: 'sign-in', user: 'carol', by: 'user', method: 'oidc', admin: false }
  ], 'an existing local account linked to the IdP identity')

  await gw.users.create({ username: 'bob' })
  await gw.users.setActive('bob', false)
  from = capture.lines().length
  const refused = await ssoLogin(gw, new CookieJar(), { login: 'bob', password: 'pw' })
  t.equal(refused.status, 403)
  t.same(audit(from).map(core), [{ audit: 'sign-in-failed', user: 'bob', by: 'user', method: 'oidc', reason: 'disabled' }])

  from = capture.lines().length
  const stray = await fetchWithJar(new CookieJar(), gw.url + '/auth/oidc/callback?code=x')
  t.equal(stray.status, 400)
  t.same(audit(from).map(core), [{ audit: 'sign-in-failed', by: 'user', method: 'oidc', reason: 'transaction-missing' }], 'no user when nobody was identified')

  const after = await metrics()
  t.equal(after.value('authgate_logins_total', { method: 'oidc' }), 3)
  t.equal(after.value('authgate_login_failures_total', { method: 'oidc', reason: 'disabled' }), 1)
  t.equal(after.value('authgate_login_failures_total', { method: 'oidc', reason: 'transaction-missing' }), 1)
  t.equal(after.value('authgate_logins_total', { method: 'local' }), 0)
})

t.test('an IdP that cannot be reached: its calls are counted as failed', async (t) => {
  const gw = await startGateway(oidcEnv('http://127.0.0.1:9/realms/x'))
  t.teardown(() => gw.close())
  let failed: number | undefined
  for (let i = 0; i < 100 && failed === undefined; i++) {
    failed = (await scrape(gw.url + '/_authgate/metrics')).value('authgate_idp_request_duration_seconds_count', { endpoint: 'discovery', outcome: 'failed' })
    if (failed === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(failed !== undefined && failed >= 1, 'discovery failed, and timed')
})
