// ACCESS_RULES with sessions from the real OpenID Provider: `group:` compares the IdP's group names
// exactly, and `email-domain:` believes an address only when the provider said it verified it
// (email_verified true, or Cognito's "true"). Signed in for real, then a proxied request.
import t, { type Test } from 'tap'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startOidcProvider, type AccountClaims } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import { scrape } from '../support/metrics.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

const ACCOUNTS: Record<string, AccountClaims> = {
  alice: { preferred_username: 'alice', email: 'alice@example.com', email_verified: true, groups: ['staff'] },
  unverified: { preferred_username: 'unverified', email: 'unverified@example.com', email_verified: false, groups: [] },
  unsaid: { preferred_username: 'unsaid', email: 'unsaid@example.com', groups: [] },
  cognito: { preferred_username: 'cognito', email: 'Cognito@Example.com', email_verified: 'true', groups: [] },
  sub: { preferred_username: 'sub', email: 'sub@eu.example.com', email_verified: true, groups: [] },
  suffix: { preferred_username: 'suffix', email: 'suffix@example.com.evil.test', email_verified: true, groups: [] },
  oscar: { preferred_username: 'oscar', email: 'oscar@evil.test', email_verified: true, groups: ['ops'] },
  olga: { preferred_username: 'olga', email: 'olga@evil.test', email_verified: true, groups: ['Ops', 'OPS', 'ops-team'] }
}

const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: structuredClone(ACCOUNTS),
  password: 'pw'
})
t.teardown(() => op.close())

const gw = await startSsoGateway(op.issuer, { ACCESS_RULES: '/ops=group:ops;/mail=email-domain:example.com' }, upstream.url)
t.teardown(() => gw.close())

const jars = new Map<string, CookieJar>()
async function session (login: string): Promise<CookieJar> {
  const known = jars.get(login)
  if (known !== undefined) return known
  const jar = new CookieJar()
  const response = await ssoLogin(gw, jar, { login, password: 'pw' })
  await response.text()
  if (response.status !== 302) throw new Error(`${login} could not sign in: ${response.status}`)
  jars.set(login, jar)
  return jar
}

const refusals = async (): Promise<number> => (await scrape(gw.url + '/_authgate/metrics')).value('authgate_access_refusals_total', { reason: 'rule' }) ?? 0

/** A proxied API request and a browser navigation to `path`; both must agree. */
async function check (t: Test, login: string, path: string, expected: 'proxied' | 'forbidden'): Promise<void> {
  const jar = await session(login)
  const reached = upstream.received.length
  const refusedBefore = await refusals()
  const api = await fetchWithJar(jar, gw.url + path, { headers: { accept: 'application/json' } })
  const apiBody = await api.text()
  const page = await fetchWithJar(jar, gw.url + path, { headers: { accept: 'text/html,application/xhtml+xml' } })
  const pageBody = await page.text()
  if (expected === 'proxied') {
    t.equal(api.status, 200, `${login} ${path}: proxied`)
    t.equal(page.status, 200)
    t.equal(upstream.received.length, reached + 2, 'the upstream got both')
    t.equal(upstream.received.at(-1)?.url, path)
    t.equal(decodeURIComponent(String(upstream.received.at(-1)?.headers['x-user'])), login)
    t.equal(await refusals(), refusedBefore)
  } else {
    t.equal(api.status, 403, `${login} ${path}: refused`)
    t.same(JSON.parse(apiBody), { error: 'forbidden' })
    t.equal(api.headers.get('cache-control'), 'no-store')
    t.equal(page.status, 403)
    t.match(page.headers.get('content-type'), /^text\/html/)
    t.match(pageBody, /<h1>Not allowed<\/h1>/)
    t.match(pageBody, new RegExp(`You are signed in as ${login},`))
    t.equal(upstream.received.length, reached, 'nothing reached the upstream')
    t.equal(await refusals(), refusedBefore + 2, 'authgate_access_refusals_total{reason="rule"}')
  }
}

t.test('group: exact case', async (t) => {
  await check(t, 'oscar', '/ops', 'proxied')
  await check(t, 'oscar', '/ops/deploy?now=1', 'proxied')
  await check(t, 'olga', '/ops', 'forbidden')
  await check(t, 'olga', '/OPS/deploy', 'forbidden')
  await check(t, 'alice', '/ops', 'forbidden')
  await check(t, 'olga', '/operations', 'proxied')
})

t.test('email-domain: a verified address in exactly that domain', async (t) => {
  await check(t, 'alice', '/mail', 'proxied')
  await check(t, 'cognito', '/mail/inbox', 'proxied')
  await check(t, 'unverified', '/mail', 'forbidden')
  await check(t, 'unsaid', '/mail', 'forbidden')
  await check(t, 'sub', '/mail', 'forbidden')
  await check(t, 'suffix', '/mail', 'forbidden')
  await check(t, 'oscar', '/mail', 'forbidden')
  await check(t, 'unverified', '/elsewhere', 'proxied')
})

t.test('verified at the provider later: the next sign-in carries it', async (t) => {
  t.teardown(() => { op.accounts.set('unverified', structuredClone(ACCOUNTS['unverified']!)) })
  op.accounts.get('unverified')!.email_verified = true
  jars.delete('unverified')
  await check(t, 'unverified', '/mail', 'proxied')
})
