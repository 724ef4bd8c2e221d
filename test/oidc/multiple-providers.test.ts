// Several identity providers at once (OIDC_PROVIDERS=corp,partner), against two real OpenID Providers
// (node-oidc-provider) on their own ports: sign-in through each, users keyed by (issuer, sub), each
// provider's own admin mapping, allow-lists and self-registration, logout and back-channel logout
// routed to the right provider, the mix-up defence, one provider down while the other works, and
// re-validation with the provider's own settings. docs/PROTOCOL.md#several-identity-providers
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import { SignJWT, decodeJwt, type JWTPayload } from 'jose'
import type { Env } from '../../src/config/index.js'
import { CookieJar, fetchWithJar, followEndSession, signInThroughProvider, type Credentials } from '../support/browserless.js'
import { startOidcProvider, type AccountClaims, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { startGateway, type StartOptions, type TestGateway } from '../support/gateway.js'
import { POST_LOGOUT_URI, REDIRECT_URI, deliverToGateway, identityAtUpstream } from '../support/sso.js'
import { http, loginLocal } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'
import { TestClock } from '../support/clock.js'
import { scrape } from '../support/metrics.js'

const BACKCHANNEL_URI = 'http://localhost:8080/auth/oidc/backchannel-logout'
const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

// Each provider has its own client at its own IdP: a code or token meant for one is not the other's.
const CORP_CLIENT = { client_id: 'authgate-corp', client_secret: 'corp-client-secret' }
const PARTNER_CLIENT = { client_id: 'authgate-partner', client_secret: 'partner-client-secret' }

const account = (username: string, email: string, groups: string[], sub?: string): AccountClaims =>
  ({ ...(sub !== undefined ? { sub } : {}), preferred_username: username, name: `${username} Example`, email, email_verified: true, groups })

const CORP_ACCOUNTS: Record<string, AccountClaims> = {
  alice: account('alice', 'alice@corp.example', ['staff', 'admins']),
  carl: account('carl', 'carl@corp.example', ['staff']),
  // Any domain is fine at corp: the partner's allow-list is the partner's alone.
  olivia: account('olivia', 'olivia@elsewhere.test', []),
  // The same subject at both providers: two different people.
  sam: account('sam-corp', 'sam@corp.example', ['staff'], 'same-sub'),
  lee: account('lee', 'lee@corp.example', [], 'lee-sub')
}
const PARTNER_ACCOUNTS: Record<string, AccountClaims> = {
  // In a group named like corp's admin group: it means nothing coming from the partner.
  paul: account('paul', 'paul@partner.example', ['admins']),
  peggy: account('peggy', 'peggy@partner.example', ['staff']),
  mallory: account('mallory', 'mallory@elsewhere.test', ['admins']),
  sam: account('sam-partner', 'sam@partner.example', ['guests'], 'same-sub'),
  // Corp's lee's username and even its subject, at another issuer: not corp's lee.
  lee: account('lee', 'lee@partner.example', [], 'lee-sub')
}

async function provider (client: { client_id: string, client_secret: string }, accounts: Record<string, AccountClaims>): Promise<OidcProviderFixture> {
  const op = await startOidcProvider({
    clients: [{
      ...client,
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [POST_LOGOUT_URI],
      backchannel_logout_uri: BACKCHANNEL_URI,
      backchannel_logout_session_required: true
    }],
    accounts: structuredClone(accounts),
    password: 'pw',
    refreshTokens: true,
    backchannelLogout: true
  })
  t.teardown(() => op.close())
  return op
}

const upstream = await startUpstream()
t.teardown(() => upstream.close())
const corp = await provider(CORP_CLIENT, CORP_ACCOUNTS)
const partner = await provider(PARTNER_CLIENT, PARTNER_ACCOUNTS)

/** The gateway's environment for corp,partner (both clients registered the same REDIRECT_URI). */
function multiEnv (env: Env = {}, issuers: { corp?: string, partner?: string } = {}): Env {
  return {
    AUTH_METHOD: 'oidc',
    OIDC_PROVIDERS: 'corp,partner',
    OIDC_CORP_ISSUER: issuers.corp ?? corp.issuer,
    OIDC_CORP_CLIENT_ID: CORP_CLIENT.client_id,
    OIDC_CORP_CLIENT_SECRET: CORP_CLIENT.client_secret,
    OIDC_PARTNER_ISSUER: issuers.partner ?? partner.issuer,
    OIDC_PARTNER_CLIENT_ID: PARTNER_CLIENT.client_id,
    OIDC_PARTNER_CLIENT_SECRET: PARTNER_CLIENT.client_secret,
    OIDC_REDIRECT_URI: REDIRECT_URI,
    OIDC_POST_LOGOUT_REDIRECT_URI: POST_LOGOUT_URI,
    OIDC_SCOPES: 'openid profile email groups',
    ...env
  }
}

const readiness = async (gw: TestGateway): Promise<{ status: number, checks: Record<string, string> }> => {
  const response = await http(`${gw.url}/_authgate/readyz`)
  return { status: response.status, checks: (JSON.parse(response.body) as { checks: Record<string, string> }).checks }
}

/**
 * A gateway for corp,partner whose discovery has settled: every check named in `ok` is ok, every
 * other provider check has failed at least once (discovery runs in the background).
 */
async function multiGateway (env: Env = {}, options: StartOptions & { issuers?: { corp?: string, partner?: string }, ok?: string[] } = {}): Promise<TestGateway> {
  const gw = await startGateway(multiEnv(env, options.issuers), { upstream: upstream.url, ...options })
  t.teardown(() => gw.close())
  const ok = options.ok ?? ['oidc:corp', 'oidc:partner']
  for (let i = 0; i < 200; i++) {
    const { checks } = await readiness(gw)
    const settled = ['oidc:corp', 'oidc:partner'].every((name) => ok.includes(name) ? checks[name] === 'ok' : /failed/.test(checks[name] ?? ''))
    if (settled) return gw
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`discovery did not settle: ${JSON.stringify((await readiness(gw)).checks)}`)
}

/** GET /login/oidc with the given query: the gateway's answer, and the IdP authorization URL of a redirect. */
async function start (gw: TestGateway, jar: CookieJar, query = ''): Promise<{ response: Response, body: string, authorizeUrl: string | undefined }> {
  const response = await fetchWithJar(jar, `${gw.url}/login/oidc${query}`)
  const body = await response.text()
  return { response, body, authorizeUrl: response.status === 302 ? response.headers.get('location') ?? undefined : undefined }
}

/** A whole sign-in through provider `id` (undefined: no `provider` parameter); the gateway's answer to the callback. */
async function signIn (gw: TestGateway, jar: CookieJar, id: string | undefined, login: string, next = '/after'): Promise<Response> {
  const query = `?${id !== undefined ? `provider=${id}&` : ''}next=${encodeURIComponent(next)}`
  const { response, authorizeUrl } = await start(gw, jar, query)
  if (authorizeUrl === undefined) throw new Error(`/login/oidc${query} answered ${response.status}`)
  const credentials: Credentials = { login, password: 'pw' }
  const back = await signInThroughProvider(authorizeUrl, jar, credentials)
  return await fetchWithJar(jar, deliverToGateway(gw, back))
}

/** Signed in (302 asserted by the caller's throw), in a fresh browser. */
async function signedIn (gw: TestGateway, id: string, login: string): Promise<CookieJar> {
  const jar = new CookieJar()
  const response = await signIn(gw, jar, id, login)
  await response.text()
  if (response.status !== 302) throw new Error(`${login} at ${id}: ${response.status}`)
  return jar
}

const hasSessionCookie = (response: Response): boolean => response.headers.getSetCookie().some((c) => /^(__Host-)?authgate=[^;]/.test(c))
const tokenPosts = (op: OidcProviderFixture, from = 0): number => op.calls.slice(from).filter((c) => c.method === 'POST' && c.path === '/token').length
const decode = (s: string): string => s.replace(/&amp;/g, '&')

t.test('sign-in through each provider; /login/oidc without provider starts at the first; readiness per provider', async (t) => {
  const gw = await multiGateway()

  const ready = await readiness(gw)
  t.equal(ready.status, 200)
  t.equal(ready.checks['oidc:corp'], 'ok')
  t.equal(ready.checks['oidc:partner'], 'ok')
  t.equal(ready.checks['oidc'], 'ok')

  await t.test('provider=corp: corp\'s authorization endpoint and client; corp\'s user reaches the upstream', async (t) => {
    const jar = new CookieJar()
    const { authorizeUrl } = await start(gw, jar, '?provider=corp&next=%2Freports')
    const url = new URL(authorizeUrl!)
    t.equal(url.origin, corp.issuer)
    t.equal(url.searchParams.get('client_id'), CORP_CLIENT.client_id)
    t.equal(url.searchParams.get('redirect_uri'), REDIRECT_URI)
    const back = await signInThroughProvider(url, jar, { login: 'alice', password: 'pw' })
    t.equal(new URL(back).searchParams.get('iss'), corp.issuer, 'corp names itself in its response (RFC 9207)')
    const done = await fetchWithJar(jar, deliverToGateway(gw, back))
    t.equal(done.status, 302)
    t.equal(done.headers.get('location'), '/reports')
    t.same(await identityAtUpstream(gw, jar, upstream), { user: 'alice', admin: 'false', groups: 'staff,admins', email: 'alice@corp.example', fullName: 'alice Example' })
    const user = await gw.users.findByUsername('alice')
    t.equal(user?.oidcIssuer, corp.issuer)
    t.equal(user?.oidcSub, 'alice')
  })

  await t.test('provider=partner: partner\'s authorization endpoint and client; partner\'s user reaches the upstream', async (t) => {
    const jar = new CookieJar()
    const { authorizeUrl } = await start(gw, jar, '?provider=partner&next=%2Fx')
    const url = new URL(authorizeUrl!)
    t.equal(url.origin, partner.issuer)
    t.equal(url.searchParams.get('client_id'), PARTNER_CLIENT.client_id)
    const back = await signInThroughProvider(url, jar, { login: 'peggy', password: 'pw' })
    const done = await fetchWithJar(jar, deliverToGateway(gw, back))
    t.equal(done.status, 302)
    t.equal(done.headers.get('location'), '/x')
    t.same(await identityAtUpstream(gw, jar, upstream), { user: 'peggy', admin: 'false', groups: 'staff', email: 'peggy@partner.example', fullName: 'peggy Example' })
    t.equal((await gw.users.findByUsername('peggy'))?.oidcIssuer, partner.issuer)
    const session = await gw.db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id')
      .select('sessions.oidc_issuer').where('users.username', '=', 'peggy').executeTakeFirstOrThrow()
    t.equal(session.oidc_issuer, partner.issuer, 'the session records the partner as its issuer')
  })

  await t.test('without provider: the first listed (corp)', async (t) => {
    const jar = new CookieJar()
    const { authorizeUrl } = await start(gw, jar, '?next=%2Fy')
    t.equal(new URL(authorizeUrl!).origin, corp.issuer)
    t.equal(new URL(authorizeUrl!).searchParams.get('client_id'), CORP_CLIENT.client_id)
    const response = await signIn(gw, new CookieJar(), undefined, 'carl', '/y')
    t.equal(response.status, 302)
    t.equal((await gw.users.findByUsername('carl'))?.oidcIssuer, corp.issuer)
  })

  await t.test('a corp account name is not known at partner: the flows do not cross', async (t) => {
    // The partner's login form does not accept corp's alice: its own accounts only.
    const jar = new CookieJar()
    const { authorizeUrl } = await start(gw, jar, '?provider=partner')
    await t.rejects(signInThroughProvider(authorizeUrl!, jar, { login: 'alice', password: 'pw' }), /login form again/)
  })
})

t.test('users are keyed by (issuer, sub): the same sub is two users; a username linked at one provider is refused at the other', async (t) => {
  const gw = await multiGateway()

  const corpSam = await signedIn(gw, 'corp', 'sam-corp')
  const partnerSam = await signedIn(gw, 'partner', 'sam-partner')
  const atCorp = await gw.users.findByUsername('sam-corp')
  const atPartner = await gw.users.findByUsername('sam-partner')
  t.match(atCorp, { oidcIssuer: corp.issuer, oidcSub: 'same-sub', email: 'sam@corp.example' })
  t.match(atPartner, { oidcIssuer: partner.issuer, oidcSub: 'same-sub', email: 'sam@partner.example' })
  t.not(atCorp?.id, atPartner?.id, 'two distinct user rows')
  t.equal((await gw.users.list()).filter((u) => u.oidcSub === 'same-sub').length, 2)
  t.equal((await identityAtUpstream(gw, corpSam, upstream))?.user, 'sam-corp')
  t.equal((await identityAtUpstream(gw, partnerSam, upstream))?.user, 'sam-partner')

  await t.test('signing in again at corp finds corp\'s row, not the partner\'s', async (t) => {
    const jar = await signedIn(gw, 'corp', 'sam-corp')
    t.match(await identityAtUpstream(gw, jar, upstream), { user: 'sam-corp', email: 'sam@corp.example', groups: 'staff' })
    t.equal((await gw.users.list()).length, 2, 'no new row')
  })

  await t.test('lee, linked at corp, cannot be taken over by the partner\'s lee (same username, same sub)', async (t) => {
    await signedIn(gw, 'corp', 'lee')
    const before = await gw.users.findByUsername('lee')
    t.match(before, { oidcIssuer: corp.issuer, oidcSub: 'lee-sub' })
    const jar = new CookieJar()
    const response = await signIn(gw, jar, 'partner', 'lee')
    t.equal(response.status, 409)
    t.match(await response.text(), /Account already linked[\s\S]*linked-elsewhere/)
    t.notOk(hasSessionCookie(response), 'no session cookie')
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
    t.same(await gw.users.findByUsername('lee'), before, 'corp\'s lee unchanged')
  })
})

t.test('admin mapping, allow-lists and self-registration are the signing-in provider\'s', async (t) => {
  await t.test('OIDC_CORP_ADMIN_GROUP and OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS', async (t) => {
    const log = logCapture()
    const gw = await multiGateway({ OIDC_CORP_ADMIN_GROUP: 'admins', OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS: 'partner.example', LOG_LEVEL: 'info' }, { logger: log.logger })

    await t.test('corp: in "admins", admin', async (t) => {
      const jar = await signedIn(gw, 'corp', 'alice')
      t.match(await identityAtUpstream(gw, jar, upstream), { user: 'alice', admin: 'true' })
      t.equal((await gw.users.findByUsername('alice'))?.isAdmin, true)
      t.match(log.lines().filter((l) => l.audit === 'admin-granted'), [{ user: 'alice', provider: 'corp', by: 'oidc-group' }])
    })

    await t.test('partner: in "admins" too, not admin', async (t) => {
      const jar = await signedIn(gw, 'partner', 'paul')
      t.match(await identityAtUpstream(gw, jar, upstream), { user: 'paul', admin: 'false', groups: 'admins' })
      t.equal((await gw.users.findByUsername('paul'))?.isAdmin, false)
      t.notOk(log.lines().some((l) => l.audit === 'admin-granted' && l.user === 'paul'))
    })

    await t.test('partner: outside partner.example, refused (not-allowed), with the partner\'s sign-out link', async (t) => {
      const jar = new CookieJar()
      const response = await signIn(gw, jar, 'partner', 'mallory')
      const body = await response.text()
      t.equal(response.status, 403)
      t.match(body, /Not allowed here[\s\S]*\(Error code: not-allowed\)/)
      const link = /<a class="button" href="([^"]*)">Sign out at the provider<\/a>/.exec(body)
      t.ok(link, 'a way out at the provider')
      const href = new URL(decode(link?.[1] ?? '/'), gw.url)
      t.equal(href.origin + href.pathname, `${partner.issuer}/session/end`, 'the partner\'s end-session endpoint')
      t.equal(href.searchParams.get('client_id'), PARTNER_CLIENT.client_id)
      t.notOk(hasSessionCookie(response))
      t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
      t.equal(await gw.users.findByUsername('mallory'), undefined, 'no row')
      t.match(log.lines().filter((l) => l.audit === 'sign-in-failed'), [{ user: 'mallory', reason: 'not-allowed', provider: 'partner' }])
    })

    await t.test('corp: any domain (no global ALLOWED_*), signed in', async (t) => {
      const jar = await signedIn(gw, 'corp', 'olivia')
      t.match(await identityAtUpstream(gw, jar, upstream), { user: 'olivia', email: 'olivia@elsewhere.test' })
    })
  })

  await t.test('OIDC_PARTNER_ALLOW_SELF_REGISTER=false', async (t) => {
    const gw = await multiGateway({ OIDC_PARTNER_ALLOW_SELF_REGISTER: 'false' })

    await t.test('an unknown partner user is refused (not-registered)', async (t) => {
      const jar = new CookieJar()
      const response = await signIn(gw, jar, 'partner', 'peggy')
      t.equal(response.status, 403)
      t.match(await response.text(), /Not registered[\s\S]*not-registered/)
      t.equal(await gw.users.findByUsername('peggy'), undefined)
      t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
    })

    await t.test('an unknown corp user self-registers', async (t) => {
      const jar = await signedIn(gw, 'corp', 'carl')
      t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'carl')
      t.equal((await gw.users.findByUsername('carl'))?.oidcIssuer, corp.issuer)
    })

    await t.test('a registered partner user gets in and is linked to the partner', async (t) => {
      await gw.users.create({ username: 'peggy' })
      const jar = await signedIn(gw, 'partner', 'peggy')
      t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'peggy')
      t.match(await gw.users.findByUsername('peggy'), { oidcIssuer: partner.issuer, oidcSub: 'peggy' })
    })
  })
})

t.test('logout goes to the end-session endpoint of the session\'s provider', async (t) => {
  const gw = await multiGateway()
  for (const [id, op, client, login] of [['partner', partner, PARTNER_CLIENT, 'peggy'], ['corp', corp, CORP_CLIENT, 'carl']] as const) {
    await t.test(`a ${id} session`, async (t) => {
      const jar = await signedIn(gw, id, login)
      t.equal((await identityAtUpstream(gw, jar, upstream))?.user, login)
      const logout = await fetchWithJar(jar, `${gw.url}/logout`, { method: 'POST', headers: { 'sec-fetch-site': 'same-origin' } })
      t.equal(logout.status, 303)
      const target = new URL(logout.headers.get('location')!)
      t.equal(target.origin + target.pathname, `${op.issuer}/session/end`, `${id}'s end_session_endpoint`)
      t.equal(target.searchParams.get('client_id'), client.client_id)
      const hint = target.searchParams.get('id_token_hint')
      t.ok(hint, 'id_token_hint sent')
      t.match(decodeJwt(hint!), { iss: op.issuer, aud: client.client_id }, 'the ID token this provider issued')
      t.equal(target.searchParams.get('post_logout_redirect_uri'), POST_LOGOUT_URI)
      t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'the gateway session is gone')
      const final = new URL(await followEndSession(target, jar))
      t.equal(final.origin + final.pathname, POST_LOGOUT_URI, `${id} accepted the hint and came back`)
      t.equal(final.searchParams.get('state'), target.searchParams.get('state'))
    })
  }
})

t.test('mix-up: a flow started at corp completed at the partner is refused, and the code goes nowhere', async (t) => {
  const log = logCapture()
  const gw = await multiGateway({ LOG_LEVEL: 'info' }, { logger: log.logger })
  const discovery = async (op: OidcProviderFixture): Promise<{ authorization_endpoint: string, authorization_response_iss_parameter_supported?: boolean }> =>
    await fetch(`${op.issuer}/.well-known/openid-configuration`).then(async (r) => await r.json() as { authorization_endpoint: string })
  const partnerAuthorize = (await discovery(partner)).authorization_endpoint

  /** Starts at corp; returns the partner's redirect for the same state, nonce and PKCE challenge. */
  async function crossed (t: Test, jar: CookieJar): Promise<{ back: URL, corpFrom: number, partnerFrom: number }> {
    const { authorizeUrl } = await start(gw, jar, '?provider=corp&next=%2Fmixed')
    const atCorp = new URL(authorizeUrl!)
    t.equal(atCorp.origin, corp.issuer, 'the flow starts at corp')
    const corpFrom = corp.calls.length
    const partnerFrom = partner.calls.length
    const atPartner = new URL(partnerAuthorize)
    for (const [name, value] of atCorp.searchParams) atPartner.searchParams.set(name, value)
    atPartner.searchParams.set('client_id', PARTNER_CLIENT.client_id)
    const back = new URL(await signInThroughProvider(atPartner, jar, { login: 'peggy', password: 'pw' }))
    t.equal(back.searchParams.get('state'), atCorp.searchParams.get('state'), 'the partner echoed corp\'s state')
    t.ok(back.searchParams.get('code'), 'the partner issued a code')
    return { back, corpFrom, partnerFrom }
  }

  await t.test('the partner\'s response names the partner (iss): refused before any token request', async (t) => {
    const jar = new CookieJar()
    const { back, corpFrom, partnerFrom } = await crossed(t, jar)
    t.equal(back.searchParams.get('iss'), partner.issuer)
    const logFrom = log.lines().length
    const response = await fetchWithJar(jar, deliverToGateway(gw, back.href))
    const body = await response.text()
    t.equal(response.status, 400)
    t.match(body, /Sign-in failed[\s\S]*\(Error code: verification-failed\)/)
    t.notOk(hasSessionCookie(response), 'no session cookie')
    t.notOk(jar.all().some((c) => c.name.startsWith('authgate_oidc_')), 'the flow is spent')
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
    t.equal(await gw.users.findByUsername('peggy'), undefined, 'no user row')
    const failed = log.lines().slice(logFrom).filter((l) => l.msg === 'OIDC sign-in failed')
    t.equal(failed.length, 1)
    t.match(failed[0], { code: 'verification-failed', provider: 'corp', reason: /mix-up refused/ })
    t.match(String(failed[0]?.reason), /names provider partner/)
    t.equal(tokenPosts(corp, corpFrom), 0, 'corp\'s token endpoint not called')
    t.equal(tokenPosts(partner, partnerFrom), 0, 'the partner\'s token endpoint not called')
    const code = back.searchParams.get('code')!
    t.notOk(log.lines().some((l) => JSON.stringify(l).includes(code)), 'the code is in no log line')
  })

  await t.test('the same without iss: still refused, no session', async (t) => {
    const jar = new CookieJar()
    const { back, corpFrom, partnerFrom } = await crossed(t, jar)
    back.searchParams.delete('iss')
    const logFrom = log.lines().length
    const response = await fetchWithJar(jar, deliverToGateway(gw, back.href))
    const body = await response.text()
    t.equal(response.status, 400)
    t.notOk(hasSessionCookie(response), 'no session cookie')
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
    t.equal(await gw.users.findByUsername('peggy'), undefined, 'no user row')
    t.equal(tokenPosts(partner, partnerFrom), 0, 'the partner\'s token endpoint not called')
    const failed = log.lines().slice(logFrom).filter((l) => l.msg === 'OIDC sign-in failed')
    t.equal(failed.length, 1)
    // corp advertises authorization_response_iss_parameter_supported: openid-client then requires
    // `iss`, and its absence stops the flow before the code is sent anywhere.
    t.equal((await discovery(corp)).authorization_response_iss_parameter_supported, true, 'corp advertises RFC 9207')
    t.match(failed[0], { code: 'verification-failed', provider: 'corp', reason: /iss/ })
    t.match(body, /\(Error code: verification-failed\)/)
    t.equal(tokenPosts(corp, corpFrom), 0, 'corp\'s token endpoint not called either')
  })
})

t.test('back-channel logout tokens are routed by iss to their provider', async (t) => {
  const log = logCapture()
  const gw = await multiGateway({ LOG_LEVEL: 'info' }, { logger: log.logger })

  const whoami = async (jar: CookieJar): Promise<number> => {
    const response = await fetchWithJar(jar, `${gw.url}/whoami`, { headers: { accept: 'application/json' } })
    await response.text()
    return response.status
  }
  const post = async (token: string): Promise<number> => {
    const response = await fetch(`${gw.url}/auth/oidc/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }).toString() })
    await response.text()
    return response.status
  }
  const token = async (signer: OidcProviderFixture, claims: JWTPayload): Promise<string> =>
    await new SignJWT({ iat: Math.floor(Date.now() / 1000), jti: randomUUID(), events: { [LOGOUT_EVENT]: {} }, ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: signer.signingKey.kid, typ: 'logout+jwt' }).sign(signer.signingKey.privateKey)
  const lastRefusal = (): unknown => log.lines().filter((l) => l.msg === 'back-channel logout refused').at(-1)?.reason

  const samCorp = await signedIn(gw, 'corp', 'sam-corp')
  const samPartner = await signedIn(gw, 'partner', 'sam-partner')
  const alice = await signedIn(gw, 'corp', 'alice')
  for (const jar of [samCorp, samPartner, alice]) t.equal(await whoami(jar), 200)

  await t.test('signed with corp\'s key but claiming the partner\'s iss: 400, nothing ends', async (t) => {
    t.equal(await post(await token(corp, { iss: partner.issuer, aud: PARTNER_CLIENT.client_id, sub: 'same-sub' })), 400)
    t.match(lastRefusal(), /no applicable key found|signature verification failed/)
    t.equal(await whoami(samPartner), 200)
    t.equal(await whoami(samCorp), 200)
  })

  await t.test('an unknown iss: 400, nothing ends', async (t) => {
    t.equal(await post(await token(corp, { iss: 'http://127.0.0.1:1', aud: CORP_CLIENT.client_id, sub: 'same-sub' })), 400)
    t.match(lastRefusal(), /iss is not the issuer of a configured provider/)
    t.equal(await whoami(samCorp), 200)
    t.equal(await whoami(samPartner), 200)
  })

  await t.test('the partner\'s token with corp\'s client as audience: 400', async (t) => {
    t.equal(await post(await token(partner, { iss: partner.issuer, aud: CORP_CLIENT.client_id, sub: 'same-sub' })), 400)
    t.match(lastRefusal(), /claim aud/)
    t.equal(await whoami(samPartner), 200)
  })

  await t.test('the partner\'s token for sub same-sub ends the partner user\'s session only', async (t) => {
    t.equal(await post(await token(partner, { iss: partner.issuer, aud: PARTNER_CLIENT.client_id, sub: 'same-sub' })), 200)
    t.equal(await whoami(samPartner), 401, 'sam-partner signed out')
    t.equal(await whoami(samCorp), 200, 'sam-corp (the same sub at corp) still signed in')
    t.equal(await whoami(alice), 200)
    t.match(log.lines().filter((l) => l.audit === 'sessions-ended'), [{ user: 'sam-partner', by: 'idp-backchannel', sessions: 1 }])
    t.match(log.lines().filter((l) => l.msg === 'back-channel logout: IdP session ended').at(-1), { provider: 'partner', sessions: 1 })
  })

  await t.test('signing out at the partner (its own logout token, posted by the provider) ends the partner session only', async (t) => {
    partner.outgoing = (url) => url.href === BACKCHANNEL_URI ? new URL('/auth/oidc/backchannel-logout', gw.url) : url
    corp.outgoing = (url) => url.href === BACKCHANNEL_URI ? new URL('/auth/oidc/backchannel-logout', gw.url) : url
    t.teardown(() => { partner.outgoing = (url) => url; corp.outgoing = (url) => url })
    const paul = await signedIn(gw, 'partner', 'paul')
    t.equal(await whoami(paul), 200)
    const attempts = partner.backchannel.length
    await followEndSession(`${partner.issuer}/session/end?client_id=${PARTNER_CLIENT.client_id}`, paul)
    t.same(partner.backchannel.slice(attempts), [{ clientId: PARTNER_CLIENT.client_id, ok: true }], 'the gateway accepted the partner\'s token')
    t.equal(await whoami(paul), 401, 'paul signed out')
    t.equal(await whoami(samCorp), 200, 'corp\'s sessions go on')
    t.equal(await whoami(alice), 200)
  })

  await t.test('corp\'s token for sub same-sub ends the corp user\'s session', async (t) => {
    t.equal(await post(await token(corp, { iss: corp.issuer, aud: CORP_CLIENT.client_id, sub: 'same-sub' })), 200)
    t.equal(await whoami(samCorp), 401)
    t.equal(await whoami(alice), 200)
  })
})

/** A loopback port nothing listens on: the provider there is down. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

t.test('one provider down, the other working', async (t) => {
  const down = `http://127.0.0.1:${await closedPort()}`

  await t.test('AUTH_METHOD=oidc: ready, corp works, the partner\'s button says it is unavailable', async (t) => {
    const gw = await multiGateway({}, { issuers: { partner: down }, ok: ['oidc:corp'] })
    const ready = await readiness(gw)
    t.equal(ready.status, 200, 'ready: one provider is enough')
    t.equal(ready.checks['oidc'], 'ok')
    t.equal(ready.checks['oidc:corp'], 'ok')
    t.match(ready.checks['oidc:partner'], /discovery of http:\/\/127\.0\.0\.1:\d+\/ failed .*ECONNREFUSED/)

    const jar = await signedIn(gw, 'corp', 'alice')
    t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'alice', 'corp sign-in works')

    const login = await http(`${gw.url}/login?next=%2Fz`)
    t.equal(login.status, 200, 'the buttons, not a redirect')
    const corpButton = /<a [^>]*id="sso-corp"[^>]*>[^<]*<\/a>/.exec(login.body)?.[0]
    const partnerButton = /<a [^>]*id="sso-partner"[^>]*>[^<]*<\/a>(<span[^>]*>[^<]*<\/span>)?/.exec(login.body)?.[0]
    t.match(corpButton, /href="\/login\/oidc\?provider=corp&amp;next=%2Fz"[^>]*>Sign in with corp</)
    t.notMatch(corpButton, /data-unavailable|aria-describedby/, 'corp\'s button is plain')
    t.match(partnerButton, /href="\/login\/oidc\?provider=partner&amp;next=%2Fz" aria-describedby="sso-partner-status" data-unavailable>Sign in with partner<\/a>/)
    t.match(partnerButton, /<span class="sso-status" id="sso-partner-status">Cannot be reached right now; try again in a moment\.<\/span>/)
    t.notMatch(login.body, /id="sso-corp-status"/)
    t.match(login.body, /<ul class="sso-buttons"><li><a [^>]*id="sso-corp"[\s\S]*<li><a [^>]*id="sso-partner"/, 'in OIDC_PROVIDERS order')
    t.notMatch(login.body, /name="username"/, 'no local form')

    const sso = await start(gw, new CookieJar(), '?provider=partner&next=%2Fz')
    t.equal(sso.response.status, 503)
    t.match(sso.body, /id="login-error"[\s\S]*The single sign-on provider cannot be reached right now/)
    t.match(sso.body, /id="sso-corp"/, 'the login page itself, with the other provider\'s button')
  })

  await t.test('AUTH_METHOD=both: local sign-in works, corp too', async (t) => {
    const gw = await multiGateway({ AUTH_METHOD: 'both', LOCAL_AUTH: 'username' }, { issuers: { partner: down }, ok: ['oidc:corp'] })
    t.equal((await readiness(gw)).status, 200)
    const page = await http(`${gw.url}/login`)
    t.match(page.body, /id="sso-partner"[^>]*data-unavailable/)
    t.match(page.body, /role="separator" aria-label="or"/)
    t.match(page.body, /name="username"/)
    const local = await loginLocal(gw.url, 'localuser', { next: '/y' })
    t.equal(local.response.status, 303)
    t.equal(local.response.headers.location, '/y')
    t.equal((await signIn(gw, new CookieJar(), 'corp', 'carl')).status, 302)
  })

  await t.test('AUTH_METHOD=oidc with both down: not ready', async (t) => {
    const gw = await multiGateway({}, { issuers: { corp: down, partner: `http://127.0.0.1:${await closedPort()}` }, ok: [] })
    const ready = await readiness(gw)
    t.equal(ready.status, 503)
    t.equal(ready.checks['oidc'], 'no SSO provider is discovered yet')
  })
})

t.test('an unknown or repeated provider is a 400 page, and starts nothing', async (t) => {
  const gw = await multiGateway()
  for (const query of ['?provider=nope', '?provider=corp&provider=partner', '?provider=', '?provider=CORP', '?provider=corp,partner']) {
    const jar = new CookieJar()
    const { response, body } = await start(gw, jar, query + '&next=%2Fq')
    t.equal(response.status, 400, query)
    t.match(body, /Unknown sign-in provider[\s\S]*\(Error code: unknown-provider\)/, `${query}: the page says so`)
    t.notOk(jar.all().some((c) => c.name.startsWith('authgate_oidc_')), `${query}: no flow started`)
  }
})

t.test('re-validation uses the session\'s provider and its settings', async (t) => {
  const clock = new TestClock()
  const gw = await multiGateway({ OIDC_PARTNER_REFRESH_INTERVAL: '1', OIDC_CORP_REFRESH_INTERVAL: '0', OIDC_CORP_ADMIN_GROUP: 'admins', ADMIN_USERNAMES: '' }, { clock })
  t.teardown(() => {
    partner.accounts.set('peggy', structuredClone(PARTNER_ACCOUNTS['peggy']!))
    corp.accounts.set('carl', structuredClone(CORP_ACCOUNTS['carl']!))
  })

  const peggy = await signedIn(gw, 'partner', 'peggy')
  const carl = await signedIn(gw, 'corp', 'carl')
  t.match(await identityAtUpstream(gw, peggy, upstream), { user: 'peggy', admin: 'false', groups: 'staff' })
  t.match(await identityAtUpstream(gw, carl, upstream), { user: 'carl', admin: 'false', groups: 'staff' })
  const corpTokens = tokenPosts(corp)
  const partnerTokens = tokenPosts(partner)

  partner.accounts.get('peggy')!.groups = ['staff', 'admins', 'projects']
  corp.accounts.get('carl')!.groups = ['staff', 'admins']
  clock.advance(1500)
  // A request of each session after the interval: a due session starts its re-validation now, so
  // corp's would run alongside the partner's if corp's settings (or corp's re-validator) were used.
  await identityAtUpstream(gw, carl, upstream)

  let seen: Awaited<ReturnType<typeof identityAtUpstream>>
  for (let i = 0; i < 200; i++) {
    seen = await identityAtUpstream(gw, peggy, upstream)
    if (seen?.groups === 'staff,admins,projects') break
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  t.match(seen, { user: 'peggy', groups: 'staff,admins,projects' }, 'the partner\'s group change reached the upstream without a new sign-in')
  t.equal(seen?.admin, 'false', 'corp\'s admin group does not apply to a partner session')
  t.ok(tokenPosts(partner, 0) > partnerTokens, 'refreshed at the partner')

  t.match(await identityAtUpstream(gw, carl, upstream), { groups: 'staff', admin: 'false' }, 'corp (OIDC_CORP_REFRESH_INTERVAL=0): what the sign-in said')
  t.equal(tokenPosts(corp), corpTokens, 'no refresh at corp')
})

t.test('a provider removed from OIDC_PROVIDERS: its sessions are refused, the others\' go on; IdP metrics name the provider', async (t) => {
  const before = await multiGateway()
  const corpJar = await signedIn(before, 'corp', 'alice')
  const partnerJar = await signedIn(before, 'partner', 'peggy')
  t.ok(await identityAtUpstream(before, partnerJar, upstream), 'the partner session works while partner is configured')

  const scraped = await scrape(`${before.url}/_authgate/metrics`)
  for (const id of ['corp', 'partner']) {
    t.ok(scraped.value('authgate_idp_request_duration_seconds_count', { endpoint: 'token', outcome: 'ok', provider: id })! >= 1, `token requests to ${id} counted under its id`)
  }

  // The same database and secrets (a restart, or another replica), with partner removed.
  const { OIDC_PARTNER_ISSUER: _i, OIDC_PARTNER_CLIENT_ID: _c, OIDC_PARTNER_CLIENT_SECRET: _s, ...corpOnly } = multiEnv({ OIDC_PROVIDERS: 'corp' })
  const after = await startGateway(corpOnly, { upstream: upstream.url, db: before.db })
  t.teardown(() => after.close())
  t.equal(await identityAtUpstream(after, partnerJar, upstream), undefined, 'the partner session is refused')
  t.equal((await identityAtUpstream(after, corpJar, upstream))?.user, 'alice', 'the corp session goes on')
  const metrics = await scrape(`${after.url}/_authgate/metrics`)
  t.equal(metrics.value('authgate_session_refusals_total', { reason: 'provider-removed' }), 1, 'refused as provider-removed')
})
