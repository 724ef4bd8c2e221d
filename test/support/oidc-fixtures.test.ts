/**
 * Proves the OpenID Provider fixtures work, using openid-client v6 directly as
 * the relying party (not the gateway): if these pass, a failing gateway OIDC
 * test points at the gateway, not at the fixtures.
 */
import t from 'tap'
import * as client from 'openid-client'
import { CookieJar, fetchWithJar, followEndSession, parseForms, signInThroughProvider } from './browserless.js'
import { startHostileIdp, type HostileIdpFixture, type Misbehaviour } from './hostile-idp.js'
import { startOidcProvider, type OidcProviderFixture } from './oidc-provider.js'

// Never fetched: the helpers stop at the first redirect that leaves the IdP.
const REDIRECT_URI = 'http://localhost:8080/auth/oidc/callback'
const POST_LOGOUT_URI = 'http://localhost:8080/login'
const CLIENT_ID = 'authgate'
const CLIENT_SECRET = 'authgate-test-secret'
const SCOPE = 'openid profile email groups'

/** Discovery as the gateway does it (http is only allowed for these loopback fixtures). */
function discover (issuer: string, extra: Array<(c: client.Configuration) => void> = [], auth?: client.ClientAuth) {
  return client.discovery(new URL(issuer), CLIENT_ID, CLIENT_SECRET, auth, {
    execute: [client.allowInsecureRequests, ...extra]
  })
}

/** Builds an Authorization Code + PKCE (S256) request with state and nonce. */
async function authorizationRequest (config: client.Configuration) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier()
  const expectedState = client.randomState()
  const expectedNonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce
  })
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce } }
}

t.test('CookieJar', async (t) => {
  const jar = new CookieJar()
  jar.setCookie('http://127.0.0.1:4000/a/b', 'dir=1')
  jar.setCookie('http://127.0.0.1:4000/', 'root=1; Path=/')
  jar.setCookie('http://127.0.0.1:4000/', 'scoped=1; Path=/only')
  jar.setCookie('http://127.0.0.1:4000/', 'gone=1; Max-Age=0')
  jar.setCookie('http://127.0.0.1:4000/', 'old=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT')
  jar.setCookie('http://127.0.0.1:4000/', 'sec=1; Secure; HttpOnly; SameSite=Lax')
  jar.setCookie('http://127.0.0.1:4000/', 'foreign=1; Domain=example.com')

  t.equal(jar.cookieHeader('http://127.0.0.1:4000/'), 'root=1; sec=1', 'default-path, Max-Age=0, Expires, foreign Domain')
  t.equal(jar.cookieHeader('http://127.0.0.1:5000/a/x'), 'dir=1; root=1; sec=1', 'ports are ignored; longest path first')
  t.equal(jar.get('http://127.0.0.1:4000/only/x', 'scoped'), '1', 'path prefix match')
  t.equal(jar.get('http://127.0.0.1:4000/onlyx', 'scoped'), undefined, 'path match is per segment')
  t.equal(jar.get('http://10.0.0.1/', 'root'), undefined, 'host-only cookies stay on their host')

  const strict = new CookieJar({ loopbackIsSecure: false })
  strict.setCookie('http://127.0.0.1/', 'sec=1; Secure')
  t.equal(strict.cookieHeader('http://127.0.0.1/'), undefined, 'Secure cookies need https when loopback is not trusted')
  t.equal(strict.cookieHeader('https://127.0.0.1/'), 'sec=1')

  jar.setCookie('http://app.example.test/', 'shared=1; Domain=.example.test')
  t.equal(jar.get('http://other.example.test/', 'shared'), '1', 'Domain cookies reach subdomains')
  jar.setCookie('http://127.0.0.1:4000/', 'root=2; Path=/')
  t.equal(jar.get('http://127.0.0.1/', 'root'), '2', 'same name/domain/path replaces')
  jar.delete('root')
  t.equal(jar.get('http://127.0.0.1/', 'root'), undefined)
})

t.test('parseForms', async (t) => {
  const html = `<form id="f" method="post" action="/go?x=1&amp;y=2">
    <input type="hidden" name="csrf_token" value="a&quot;b">
    <input name="username"><input type=checkbox name="remember">
    <select name="lang"><option value="en">English<option value="fr" selected>French</select>
    <button type="submit" name="inside" value="1">Go</button></form>
    <button type="submit" form="f" name="outside" value="yes">Also</button>`
  const [form] = parseForms(html, 'http://127.0.0.1:1234/login')
  t.ok(form)
  t.equal(form?.action, 'http://127.0.0.1:1234/go?x=1&y=2')
  t.equal(form?.method, 'POST')
  t.same(form?.fields, { csrf_token: 'a"b', username: '', lang: 'fr' })
  t.same(form?.buttons, [
    { name: 'inside', value: '1' },
    { name: 'outside', value: 'yes' }
  ])
})

t.test('real oidc-provider', async (t) => {
  const op: OidcProviderFixture = await startOidcProvider({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [POST_LOGOUT_URI]
      }
    ],
    accounts: {
      alice: {
        preferred_username: 'alice',
        name: 'Alice Ämmälä',
        email: 'alice@example.test',
        email_verified: true,
        groups: ['staff', 'tt-admins']
      }
    },
    password: 'correct horse'
  })
  t.teardown(() => op.close())
  t.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)

  const config = await discover(op.issuer)
  const metadata = config.serverMetadata()
  t.equal(metadata.issuer, op.issuer)
  t.equal(metadata.end_session_endpoint, `${op.issuer}/session/end`)
  t.same(metadata.code_challenge_methods_supported, ['S256'])
  t.equal(metadata.authorization_response_iss_parameter_supported, true)

  const jar = new CookieJar()

  await t.test('wrong password is reported, not looped on', async (t) => {
    const { url } = await authorizationRequest(config)
    await t.rejects(
      signInThroughProvider(url, new CookieJar(), { login: 'alice', password: 'nope' }),
      /credentials rejected/
    )
  })

  await t.test('PKCE is required by the provider', async (t) => {
    const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: SCOPE, state: 's' })
    const callback = new URL(await signInThroughProvider(url, new CookieJar(), { login: 'alice', password: 'correct horse' }))
    t.equal(callback.searchParams.get('error'), 'invalid_request')
    t.match(callback.searchParams.get('error_description'), /PKCE/)
  })

  let idToken = ''
  await t.test('Authorization Code + PKCE sign-in through the login form', async (t) => {
    const { url, checks } = await authorizationRequest(config)
    const callback = new URL(await signInThroughProvider(url, jar, { login: 'alice', password: 'correct horse' }))
    t.equal(`${callback.origin}${callback.pathname}`, REDIRECT_URI)
    t.equal(callback.searchParams.get('state'), checks.expectedState)
    t.equal(callback.searchParams.get('iss'), op.issuer)

    const tokens = await client.authorizationCodeGrant(config, callback, checks)
    const claims = tokens.claims()
    t.ok(claims)
    t.equal(claims?.sub, 'alice')
    t.equal(claims?.['preferred_username'], 'alice')
    t.equal(claims?.['name'], 'Alice Ämmälä')
    t.equal(claims?.['email'], 'alice@example.test')
    t.equal(claims?.['email_verified'], true)
    t.same(claims?.['groups'], ['staff', 'tt-admins'])

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'alice')
    t.same(userinfo['groups'], ['staff', 'tt-admins'])
    idToken = tokens.id_token ?? ''
    t.ok(idToken)
    t.same(op.serverErrors, [])
  })

  await t.test('account changes show up at the next login (provider session reused)', async (t) => {
    op.accounts.get('alice')!.groups = ['staff']
    const before = op.calls.length
    const { url, checks } = await authorizationRequest(config)
    const callback = new URL(await signInThroughProvider(url, jar, { login: 'alice', password: 'correct horse' }))
    t.notOk(
      op.calls.slice(before).some((c) => c.path.startsWith('/interaction/')),
      'no login form: the jar carries the provider session'
    )
    const tokens = await client.authorizationCodeGrant(config, callback, checks)
    t.same(tokens.claims()?.['groups'], ['staff'])
  })

  await t.test('RP-initiated logout with post_logout_redirect_uri and state', async (t) => {
    const endSessionUrl = client.buildEndSessionUrl(config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state: 'bye-123'
    })
    const final = new URL(await followEndSession(endSessionUrl, jar))
    t.equal(`${final.origin}${final.pathname}`, POST_LOGOUT_URI)
    t.equal(final.searchParams.get('state'), 'bye-123')

    // The provider session is gone: the next authorization shows the form again.
    const { url } = await authorizationRequest(config)
    const response = await fetchWithJar(jar, url)
    const interaction = response.headers.get('location') ?? ''
    t.match(interaction, /\/interaction\//)
    const page = await fetchWithJar(jar, new URL(interaction, op.issuer))
    const [form] = parseForms(await page.text(), page.url)
    t.ok(form?.fieldNames.includes('login'), 'login form shown after logout')
  })

  await t.test('logout without post_logout_redirect_uri ends on the provider page', async (t) => {
    const endSessionUrl = client.buildEndSessionUrl(config, {})
    const final = new URL(await followEndSession(endSessionUrl, new CookieJar()))
    t.equal(final.origin, op.issuer)
    t.equal(final.pathname, '/session/end/success')
  })

  t.test('calls are recorded', async (t) => {
    t.ok(op.calls.some((c) => c.method === 'POST' && c.path === '/token'))
    t.ok(op.calls.some((c) => c.method === 'GET' && c.path === '/.well-known/openid-configuration'))
  })
})

t.test('real oidc-provider without end_session and with userinfo-only claims', async (t) => {
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: new Map([['u-42', { sub: 'u-42', preferred_username: 'bob', email: 'bob@example.test', groups: [] }]]),
    endSession: false,
    idTokenClaims: false
  })
  t.teardown(() => op.close())
  const config = await discover(op.issuer)
  t.equal(config.serverMetadata().end_session_endpoint, undefined, 'no end_session_endpoint advertised')

  const { url, checks } = await authorizationRequest(config)
  // Login by preferred_username; any password is accepted without `password`.
  const callback = new URL(await signInThroughProvider(url, new CookieJar(), { login: 'bob', password: 'x' }))
  const tokens = await client.authorizationCodeGrant(config, callback, checks)
  t.equal(tokens.claims()?.sub, 'u-42')
  t.equal(tokens.claims()?.['preferred_username'], undefined, 'ID Token carries no profile claims')
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'u-42')
  t.equal(userinfo['preferred_username'], 'bob')
  t.same(userinfo['groups'], [])

  await t.test('a signed-in user asked for more scopes goes through the consent form', async (t) => {
    const jar = new CookieJar()
    const narrow = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256'
    })
    await signInThroughProvider(narrow, jar, { login: 'bob', password: 'x' })
    const before = op.calls.length
    const { url, checks } = await authorizationRequest(config)
    const callback = new URL(await signInThroughProvider(url, jar, { login: 'bob', password: 'x' }))
    t.ok(op.calls.slice(before).some((c) => c.method === 'POST' && c.path.endsWith('/confirm')), 'consent form posted')
    const tokens = await client.authorizationCodeGrant(config, callback, checks)
    t.equal(tokens.scope, SCOPE)
  })
})

t.test('hostile IdP', async (t) => {
  const idp: HostileIdpFixture = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET })
  t.teardown(() => idp.close())

  /** Runs the whole flow against the IdP as it currently (mis)behaves. */
  async function login (options: { nonRepudiation?: boolean, auth?: client.ClientAuth } = {}) {
    const config = await discover(
      idp.issuer,
      options.nonRepudiation ? [client.enableNonRepudiationChecks] : [],
      options.auth
    )
    const { url, checks } = await authorizationRequest(config)
    const response = await fetch(url, { redirect: 'manual' })
    if (response.status !== 302) throw new Error(`authorize answered ${response.status}: ${await response.text()}`)
    const callback = new URL(response.headers.get('location') ?? '')
    return { config, checks, callback, grant: () => client.authorizationCodeGrant(config, callback, checks) }
  }

  await t.test('well-behaved: client_secret_post', async (t) => {
    idp.setMisbehave('none')
    const { config, checks, grant } = await login()
    const tokens = await grant()
    t.equal(tokens.claims()?.sub, 'hostile-user-1')
    t.equal(tokens.claims()?.['preferred_username'], 'mallory')
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'hostile-user-1')
    t.same(userinfo['groups'], ['staff'])

    const recorded = idp.authorizeRequests.at(-1)
    t.equal(recorded?.state, checks.expectedState)
    t.equal(recorded?.nonce, checks.expectedNonce)
    t.equal(recorded?.code_challenge, await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier))
    t.equal(recorded?.redirect_uri, REDIRECT_URI)
    t.equal(idp.tokenRequests.at(-1)?.authMethod, 'client_secret_post')
  })

  await t.test('well-behaved: client_secret_basic and non-repudiation checks', async (t) => {
    idp.setMisbehave('none')
    const { grant } = await login({ nonRepudiation: true, auth: client.ClientSecretBasic() })
    t.equal((await grant()).claims()?.sub, 'hostile-user-1')
    t.equal(idp.tokenRequests.at(-1)?.authMethod, 'client_secret_basic')
  })

  await t.test('a code is single-use', async (t) => {
    idp.setMisbehave('none')
    const { config, checks, callback, grant } = await login()
    await grant()
    await t.rejects(client.authorizationCodeGrant(config, callback, checks))
    t.equal(idp.tokenRequests.at(-1)?.error, 'invalid_grant')
  })

  // Misbehaviours openid-client rejects with its default checks, and the
  // reason it gives (the cause's message), so that a fixture bug cannot
  // masquerade as the expected rejection.
  const rejected: Array<[Misbehaviour, RegExp]> = [
    ['alg-none', /"alg" header/],
    ['wrong-aud', /"aud" \(audience\) claim/],
    ['wrong-iss', /"iss" \(issuer\) claim/],
    ['expired', /"exp" \(expiration time\) claim/],
    ['missing-iat', /"iat" \(issued at\) claim missing/],
    ['wrong-nonce', /"nonce" claim/],
    ['wrong-state', /"state" response parameter/],
    ['missing-iss-param', /"iss" \(issuer\) missing/],
    ['wrong-iss-param', /"iss" \(issuer\) response parameter/]
  ]
  for (const [m, reason] of rejected) {
    await t.test(`${m} is rejected`, async (t) => {
      idp.setMisbehave(m)
      const { grant } = await login()
      await t.rejects(grant(), { cause: { message: reason } })
    })
  }

  await t.test('an authorization-response failure makes no token call', async (t) => {
    idp.setMisbehave('wrong-state')
    const { grant } = await login()
    const before = idp.calls.length
    await t.rejects(grant(), { cause: { message: /"state"/ } })
    t.same(idp.calls.slice(before), [], 'nothing reached the IdP after the state mismatch')
  })

  await t.test('bad-signature needs non-repudiation checks to be caught', async (t) => {
    idp.setMisbehave('bad-signature')
    // Over a direct back-channel openid-client trusts the transport, not the signature.
    await t.resolves((await login()).grant())
    await t.rejects((await login({ nonRepudiation: true })).grant(), { cause: { message: /signature verification failed/ } })
  })

  await t.test('userinfo-sub-mismatch is caught by fetchUserInfo', async (t) => {
    idp.setMisbehave('userinfo-sub-mismatch')
    const { config, grant } = await login()
    const tokens = await grant()
    const sub = tokens.claims()?.sub ?? ''
    await t.rejects(client.fetchUserInfo(config, tokens.access_token, sub), { cause: { message: /"sub"/ } })
  })

  await t.test('unknown-kid-then-rotate: a JWKS refetch on unknown kid succeeds', async (t) => {
    idp.setMisbehave('unknown-kid-then-rotate')
    const { config, grant } = await login({ nonRepudiation: true })
    // Prime the relying party's JWKS cache with the first (pre-rotation)
    // JWKS. openid-client refetches on an unknown kid only when its cached
    // JWKS is at least 60 s old, so mark the cache as fetched two minutes ago.
    const first = (await (await fetch(`${idp.issuer}/jwks`)).json()) as client.ExportedJWKSCache['jwks']
    t.equal(first.keys.length, 2, 'key B is not served yet')
    client.setJwksCache(config, { jwks: first, uat: Math.floor(Date.now() / 1000) - 120 })
    t.equal((await grant()).claims()?.sub, 'hostile-user-1')
    t.equal(idp.calls.filter((c) => c.path === '/jwks').length >= 2, true, 'JWKS fetched again')
  })

  await t.test('claims can be reshaped and the authorization response overridden', async (t) => {
    idp.setMisbehave('none')
    idp.setClaims({ sub: 'u-1', groups: 'admins', realm_access: { roles: ['tt-admin'] } })
    idp.setAuthorizeResponse({ extra: { session_state: 'xyz' } })
    const { callback, grant } = await login()
    t.equal(callback.searchParams.get('session_state'), 'xyz')
    const claims = (await grant()).claims()
    t.equal(claims?.['preferred_username'], undefined)
    t.equal(claims?.['groups'], 'admins')
    t.same(claims?.['realm_access'], { roles: ['tt-admin'] })

    idp.setAuthorizeResponse({ error: 'access_denied' })
    const denied = await login()
    t.equal(denied.callback.searchParams.get('error'), 'access_denied')
    const error = await denied.grant().then(
      () => undefined,
      (e: unknown) => e
    )
    t.type(error, client.AuthorizationResponseError)
    t.equal((error as client.AuthorizationResponseError).error, 'access_denied')
    idp.setAuthorizeResponse({})
  })

  await t.test('end session', async (t) => {
    const config = await discover(idp.issuer)
    const url = client.buildEndSessionUrl(config, { post_logout_redirect_uri: POST_LOGOUT_URI, state: 's1' })
    const response = await fetch(url, { redirect: 'manual' })
    t.equal(response.headers.get('location'), `${POST_LOGOUT_URI}?state=s1`)
    t.equal(idp.endSessionRequests.at(-1)?.['client_id'], CLIENT_ID)
  })
})
