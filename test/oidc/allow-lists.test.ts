// ALLOWED_EMAIL_DOMAINS, ALLOWED_EMAILS and ALLOWED_GROUPS against the real OpenID Provider: who
// gets in, and that a refused person leaves no session, no user row and no change to an existing
// row — only the 403 page, a metric and an audit line. The email tricks (unverified, "a@b@c",
// "example.com.evil.test", subdomains) and groups differing in case are signed in for real.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { CookieJar, fetchWithJar, followEndSession } from '../support/browserless.js'
import { startOidcProvider, type AccountClaims, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { createTestDatabase, type TestGateway } from '../support/gateway.js'
import { CLIENT_ID, CLIENT_SECRET, POST_LOGOUT_URI, REDIRECT_URI, identityAtUpstream, ssoLogin, startSsoGateway } from '../support/sso.js'
import { logCapture } from '../support/log-capture.js'
import { scrape } from '../support/metrics.js'
import type { Db } from '../../src/db/index.js'
import type { User } from '../../src/db/users.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

/** Everyone signs in with their key as login; `email_verified` is set per account, or left out. */
const ACCOUNTS: Record<string, AccountClaims> = {
  alice: { preferred_username: 'alice', name: 'Alice', email: 'alice@example.com', email_verified: true, groups: ['staff'] },
  unverified: { preferred_username: 'unverified', email: 'unverified@example.com', email_verified: false, groups: [] },
  unsaid: { preferred_username: 'unsaid', email: 'unsaid@example.com', groups: [] },
  // AWS Cognito sends the flag as a string.
  cognito: { preferred_username: 'cognito', email: 'cognito@example.com', email_verified: 'true', groups: [] },
  cognitono: { preferred_username: 'cognitono', email: 'cognitono@example.com', email_verified: 'false', groups: [] },
  shouty: { preferred_username: 'shouty', email: 'ALICE@EXAMPLE.COM', email_verified: true, groups: [] },
  twoat: { preferred_username: 'twoat', email: 'user@evil.test@example.com', email_verified: true, groups: [] },
  suffix: { preferred_username: 'suffix', email: 'alice@example.com.evil.test', email_verified: true, groups: [] },
  sub: { preferred_username: 'sub', email: 'sub@eu.example.com', email_verified: true, groups: [] },
  dana: { preferred_username: 'dana', email: 'Dana@Partner.TEST', email_verified: true, groups: [] },
  danafake: { preferred_username: 'danafake', email: 'dana@partner.test', email_verified: false, groups: [] },
  erin: { preferred_username: 'erin', email: 'erin@partner.test', email_verified: true, groups: [] },
  oscar: { preferred_username: 'oscar', email: 'oscar@evil.test', email_verified: true, groups: ['staff', 'ops'] },
  olga: { preferred_username: 'olga', email: 'olga@evil.test', email_verified: true, groups: ['Ops', 'OPS', 'ops-team'] },
  nobody: { preferred_username: 'nobody', email: 'nobody@evil.test', email_verified: true, groups: ['staff'] }
}

const op: OidcProviderFixture = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT_URI] }],
  accounts: structuredClone(ACCOUNTS),
  password: 'pw'
})
t.teardown(() => op.close())

interface Watched { gw: TestGateway, lines: () => Array<Record<string, unknown>> }

/** A gateway whose log lines are kept, so that the audit trail can be read. */
async function gateway (env: Record<string, string>, provider = op, options: { db?: Db } = {}): Promise<Watched> {
  const capture = logCapture('info')
  const gw = await startSsoGateway(provider.issuer, { OIDC_POST_LOGOUT_REDIRECT_URI: POST_LOGOUT_URI, ...env }, upstream.url, { logger: capture.logger, ...options })
  return { gw, lines: capture.lines }
}

const notAllowedCount = async (gw: TestGateway): Promise<number> =>
  (await scrape(gw.url + '/_authgate/metrics')).value('authgate_login_failures_total', { method: 'oidc', reason: 'not-allowed' }) ?? 0

const decode = (s: string): string => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')

/** The page's button link: its text and (entity-decoded) href. */
function buttonOf (body: string): { href: string, text: string } | undefined {
  const m = /<a class="button" href="([^"]*)">([^<]*)<\/a>/.exec(body)
  return m === null ? undefined : { href: decode(m[1]!), text: decode(m[2]!) }
}

async function signedIn (w: Watched, login: string): Promise<CookieJar> {
  const jar = new CookieJar()
  const response = await ssoLogin(w.gw, jar, { login, password: 'pw' }, '/after')
  await response.text()
  if (response.status !== 302) throw new Error(`${login}: ${response.status}`)
  return jar
}

/**
 * Signs `login` in through the provider and checks everything a refusal must be: the 403 page with
 * its way out, no session, no user row created or changed, counted, audited. Returns the jar (its
 * provider session is still open) and the page's link.
 */
async function refused (t: Test, w: Watched, login: string, options: { endSession?: boolean, provider?: OidcProviderFixture } = {}): Promise<{ jar: CookieJar, link: { href: string, text: string } }> {
  const { gw } = w
  const provider = options.provider ?? op
  const rowsBefore = await gw.users.list()
  const failuresBefore = await notAllowedCount(gw)
  const logFrom = w.lines().length
  const jar = new CookieJar()

  const response = await ssoLogin(gw, jar, { login, password: 'pw' }, '/after')
  const body = await response.text()
  t.equal(response.status, 403, `${login}: 403`)
  t.match(response.headers.get('content-type'), /^text\/html/)
  t.match(body, /<title>Not allowed here · [^<]+<\/title>/, 'the page title')
  t.match(body, /<h1>Not allowed here<\/h1>/)
  t.match(body, /role="alert"[^>]*>[\s\S]*may not use this application[\s\S]*\(Error code: not-allowed\)/)
  t.notOk(body.includes(ACCOUNTS[login]?.email ?? '\u0000'), 'no claim value on the page')

  const link = buttonOf(body)
  t.ok(link, 'a way out')
  if (options.endSession ?? true) {
    t.equal(link?.text, 'Sign out at the provider')
    const href = new URL(link!.href)
    t.equal(href.origin + href.pathname, `${provider.issuer}/session/end`, 'the provider\'s end_session_endpoint')
    t.equal(href.searchParams.get('client_id'), CLIENT_ID)
    t.equal(href.searchParams.get('id_token_hint'), null, 'no ID token: the gateway keeps none for a refused person')
    t.equal(href.searchParams.get('post_logout_redirect_uri'), POST_LOGOUT_URI)
    t.match(href.searchParams.get('state'), /^[\w-]{20,}$/)
  } else {
    t.same(link, { href: '/login', text: 'Back to sign-in' })
  }

  t.notOk(response.headers.getSetCookie().some((c) => /^(__Host-)?authgate=/.test(c)), 'no session cookie set')
  t.notOk(jar.all().some((c) => /^(__Host-)?authgate$/.test(c.name)), 'no session cookie in the browser')
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'the next request is not signed in')

  t.same(await gw.users.list(), rowsBefore, 'no user row created, none changed')
  t.equal(await notAllowedCount(gw), failuresBefore + 1, 'authgate_login_failures_total{method="oidc",reason="not-allowed"}')
  const audit = w.lines().slice(logFrom).filter((l) => l.audit !== undefined)
  t.same(audit.map(({ audit, user, method, reason }) => ({ audit, user, method, reason })), [
    { audit: 'sign-in-failed', user: ACCOUNTS[login]?.preferred_username ?? login, method: 'oidc', reason: 'not-allowed' }
  ], 'one audit line')
  t.equal(audit[0]?.reqId, response.headers.get('x-request-id'))
  return { jar, link: link! }
}

async function allowed (t: Test, w: Watched, login: string): Promise<void> {
  const jar = new CookieJar()
  const response = await ssoLogin(w.gw, jar, { login, password: 'pw' }, '/after')
  await response.text()
  t.equal(response.status, 302, `${login}: signed in`)
  t.equal(response.headers.get('location'), '/after')
  t.equal((await identityAtUpstream(w.gw, jar, upstream))?.user, ACCOUNTS[login]?.preferred_username ?? login)
  t.ok(await w.gw.users.findByUsername(ACCOUNTS[login]?.preferred_username ?? login), 'user row created')
}

t.test('ALLOWED_EMAIL_DOMAINS: only a verified address in exactly that domain', async (t) => {
  const w = await gateway({ ALLOWED_EMAIL_DOMAINS: 'example.com' })
  t.teardown(() => w.gw.close())

  await t.test('verified, in the domain: signed in', async (t) => { await allowed(t, w, 'alice') })
  await t.test('email_verified "true" (Cognito\'s string): signed in', async (t) => { await allowed(t, w, 'cognito') })
  await t.test('ALICE@EXAMPLE.COM: domains compare without case', async (t) => { await allowed(t, w, 'shouty') })
  await t.test('email_verified false: refused', async (t) => { await refused(t, w, 'unverified') })
  await t.test('email_verified "false": refused', async (t) => { await refused(t, w, 'cognitono') })
  await t.test('email_verified absent: refused', async (t) => { await refused(t, w, 'unsaid') })
  await t.test('user@evil.test@example.com is no address: refused', async (t) => { await refused(t, w, 'twoat') })
  await t.test('alice@example.com.evil.test: refused', async (t) => { await refused(t, w, 'suffix') })
  await t.test('a subdomain (eu.example.com): refused', async (t) => { await refused(t, w, 'sub') })

  await t.test('"Sign out at the provider" ends the provider session; another account then gets in', async (t) => {
    const { jar, link } = await refused(t, w, 'nobody')
    // Without signing out at the provider, the next attempt comes straight back as the same account.
    const start = await fetchWithJar(jar, `${w.gw.url}/login/oidc`)
    const authorize = await fetchWithJar(jar, start.headers.get('location')!)
    t.notMatch(authorize.headers.get('location'), /\/interaction\//, 'the provider still knows the refused account')

    const final = new URL(await followEndSession(link.href, jar))
    t.equal(final.origin + final.pathname, POST_LOGOUT_URI, 'the provider accepted client_id + post_logout_redirect_uri and came back')
    t.equal(final.searchParams.get('state'), new URL(link.href).searchParams.get('state'))
    const again = await ssoLogin(w.gw, jar, { login: 'alice', password: 'pw' }, '/after')
    t.equal(again.status, 302, 'the provider asked who signs in, and the allowed account got in')
    t.equal((await identityAtUpstream(w.gw, jar, upstream))?.user, 'alice')
  })
})

t.test('ALLOWED_EMAILS: the exact address, any case, verified only', async (t) => {
  const w = await gateway({ ALLOWED_EMAILS: 'dana@partner.test, someone@elsewhere.test' })
  t.teardown(() => w.gw.close())
  await t.test('Dana@Partner.TEST for dana@partner.test: signed in', async (t) => { await allowed(t, w, 'dana') })
  await t.test('the same address unverified: refused', async (t) => { await refused(t, w, 'danafake') })
  await t.test('another address in the same domain: refused', async (t) => { await refused(t, w, 'erin') })
  await t.test('a domain-listed address is not enough here: refused', async (t) => { await refused(t, w, 'alice') })
})

t.test('ALLOWED_GROUPS: the exact group name', async (t) => {
  const w = await gateway({ ALLOWED_GROUPS: 'ops' })
  t.teardown(() => w.gw.close())
  await t.test('member of ops: signed in', async (t) => { await allowed(t, w, 'oscar') })
  await t.test('Ops, OPS, ops-team: refused', async (t) => { await refused(t, w, 'olga') })
  await t.test('a verified email counts for nothing here: refused', async (t) => { await refused(t, w, 'alice') })
})

t.test('ALLOWED_GROUPS without the groups scope: nobody is in a group', async (t) => {
  const w = await gateway({ ALLOWED_GROUPS: 'ops', OIDC_SCOPES: 'openid profile email' })
  t.teardown(() => w.gw.close())
  await refused(t, w, 'oscar')
})

t.test('several lists: any one match lets in', async (t) => {
  const w = await gateway({ ALLOWED_EMAIL_DOMAINS: 'example.com', ALLOWED_EMAILS: 'dana@partner.test', ALLOWED_GROUPS: 'ops' })
  t.teardown(() => w.gw.close())
  await t.test('by domain', async (t) => { await allowed(t, w, 'alice') })
  await t.test('by address', async (t) => { await allowed(t, w, 'dana') })
  await t.test('by group', async (t) => { await allowed(t, w, 'oscar') })
  for (const login of ['nobody', 'olga', 'erin', 'unverified', 'sub']) {
    await t.test(`${login}: no list matches, refused`, async (t) => { await refused(t, w, login) })
  }
})

t.test('a provider without end_session_endpoint: the page leads back to sign-in', async (t) => {
  const plain = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: structuredClone(ACCOUNTS),
    endSession: false,
    password: 'pw'
  })
  t.teardown(() => plain.close())
  const w = await gateway({ ALLOWED_EMAIL_DOMAINS: 'example.com' }, plain)
  t.teardown(() => w.gw.close())
  await refused(t, w, 'nobody', { endSession: false, provider: plain })
})

t.test('an existing user refused later keeps their row exactly as it was', async (t) => {
  const accountAfter = (login: string): AccountClaims => op.accounts.get(login)!
  t.teardown(() => {
    op.accounts.set('alice', structuredClone(ACCOUNTS['alice']!))
    op.accounts.set('oscar', structuredClone(ACCOUNTS['oscar']!))
  })

  await t.test('the provider changes the account: email no longer verified (and a new name, no groups)', async (t) => {
    const w = await gateway({ ALLOWED_EMAIL_DOMAINS: 'example.com', OIDC_ADMIN_GROUP: 'staff', ADMIN_USERNAMES: '' })
    t.teardown(() => w.gw.close())
    await signedIn(w, 'alice')
    const before = await w.gw.users.findByUsername('alice')
    t.equal(before?.isAdmin, true, 'admin by group')
    t.ok(before?.lastLoginAt)
    Object.assign(accountAfter('alice'), { email_verified: false, name: 'Alice Renamed', email: 'alice@example.com', groups: [] })
    await refused(t, w, 'alice')
    t.same(await w.gw.users.findByUsername('alice'), before, 'email, full name, admin, last login unchanged')
  })

  await t.test('the operator changes the lists: the same database, a gateway with other lists', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-allow-lists-'))
    const database = await createTestDatabase(dir)
    const db = database.open()
    t.teardown(async () => { await db.close(); await database.drop(); rmSync(dir, { recursive: true, force: true }) })

    const first = await gateway({ ALLOWED_GROUPS: 'ops', OIDC_ADMIN_GROUP: 'ops', ADMIN_USERNAMES: '' }, op, { db })
    await signedIn(first, 'oscar')
    const before: User | undefined = await first.gw.users.findByUsername('oscar')
    await first.gw.close()
    t.equal(before?.isAdmin, true)
    t.equal(before?.email, 'oscar@evil.test')

    const second = await gateway({ ALLOWED_EMAIL_DOMAINS: 'example.com', OIDC_ADMIN_GROUP: 'ops', ADMIN_USERNAMES: '' }, op, { db })
    t.teardown(() => second.gw.close())
    Object.assign(accountAfter('oscar'), { name: 'Oscar New', email: 'oscar@new.evil.test' })
    const { length } = await second.gw.users.list()
    await refused(t, second, 'oscar')
    t.equal((await second.gw.users.list()).length, length)
    t.same(await second.gw.users.findByUsername('oscar'), before, 'email, full name, admin, last login unchanged')
  })
})
