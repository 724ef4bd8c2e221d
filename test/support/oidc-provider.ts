/**
 * A real OpenID Provider (panva/node-oidc-provider 9) for tests, listening on
 * 127.0.0.1 on an ephemeral port, with a tiny JavaScript-free login/consent
 * interaction so that tests can sign in with plain fetch and a cookie jar
 * (see ./browserless.ts).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'
// @ts-ignore -- oidc-provider 9 ships no type declarations and @types/oidc-provider
// is not a dependency; the small surface used here is typed by OidcProvider below.
// (@ts-ignore rather than @ts-expect-error so that adding the types later does not break.)
import ProviderModule from 'oidc-provider'

/** Claims of one account. `sub` defaults to the account's key in the map. */
export interface AccountClaims {
  sub?: string
  preferred_username?: string
  name?: string
  email?: string
  /** A string ("true" / "false") is what AWS Cognito sends. */
  email_verified?: boolean | string
  groups?: string[]
  [claim: string]: unknown
}

export interface OidcClientOptions {
  client_id: string
  client_secret: string
  redirect_uris: string[]
  post_logout_redirect_uris?: string[]
  /**
   * Default `client_secret_post`, which is what openid-client v6 uses when it
   * is given a client secret and no explicit ClientAuth. oidc-provider only
   * accepts the registered method, so set `client_secret_basic` to test that.
   */
  token_endpoint_auth_method?: 'client_secret_post' | 'client_secret_basic'
  /** Back-Channel Logout: where the provider posts logout tokens (needs `backchannelLogout: true`). */
  backchannel_logout_uri?: string
  /** true: ID tokens and logout tokens carry `sid` (the provider's session id). */
  backchannel_logout_session_required?: boolean
}

export interface StartOidcProviderOptions {
  clients: OidcClientOptions[]
  /** account id → claims. Copied into the mutable `accounts` map of the fixture. */
  accounts: Record<string, AccountClaims> | Map<string, AccountClaims>
  /** Advertise and serve end_session_endpoint (RP-initiated logout). Default true. */
  endSession?: boolean
  /**
   * Put the scope-released claims (preferred_username, name, email, groups…)
   * in the ID Token as well as at userinfo. Default true (Keycloak-like).
   * false = oidc-provider's spec-conformant default for the code flow: the
   * ID Token carries only `sub` & co and the profile is at userinfo only.
   */
  idTokenClaims?: boolean
  /** When set, the login form only accepts this password; otherwise any non-empty password. */
  password?: string
  /**
   * Issue refresh tokens (the clients get the refresh_token grant) at every code exchange, whatever
   * the scope, and rotate them at every use (a rotated-out token is refused: invalid_grant).
   * Default false: no refresh tokens, as before. oidc-provider's own default would also need the
   * offline_access scope (with prompt=consent).
   */
  refreshTokens?: boolean
  /**
   * Enable oidc-provider's Back-Channel Logout: at end-session it posts a logout token to each
   * client's backchannel_logout_uri (see the fixture's `outgoing` to aim it at a test gateway).
   */
  backchannelLogout?: boolean
}

/** A back-channel logout the provider attempted: where, and how it went. */
export interface BackchannelAttempt {
  clientId: string
  ok: boolean
  error?: string
}

export interface RecordedCall {
  method: string
  /** Path without the query string. */
  path: string
  time: number
}

export interface OidcProviderFixture {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  issuer: string
  /** Same as issuer: the base URL of the server. */
  url: string
  port: number
  /** The oidc-provider instance (untyped: the package ships no declarations). */
  provider: OidcProvider
  /**
   * Live account store, read on every login, token and userinfo request:
   * mutate it between logins (e.g. `accounts.get('alice')!.groups = []`).
   */
  accounts: Map<string, AccountClaims>
  /** Every request the server received, in order. */
  calls: RecordedCall[]
  /** Errors oidc-provider reported as server_error (should stay empty). */
  serverErrors: unknown[]
  /**
   * The provider's outgoing requests (back-channel logout) go to the URL this returns: the tests
   * register a fixed URI and aim it at a gateway on an ephemeral port. Default: unchanged.
   */
  outgoing: (url: URL) => URL
  /**
   * Extra HTML pages served on the provider's origin (path → body), e.g. an IdP logout page that
   * iframes a relying party's front-channel logout URI.
   */
  pages: Map<string, string>
  /** Every back-channel logout the provider made (with `backchannelLogout: true`). */
  backchannel: BackchannelAttempt[]
  /** The provider's signing key (RS256), for tests that forge or hand-make tokens it would sign. */
  signingKey: { privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'], kid: string }
  close: () => Promise<void>
}

/** The part of oidc-provider's Provider API this fixture relies on. */
export interface OidcProvider {
  issuer: string
  callback: () => (req: IncomingMessage, res: ServerResponse) => void
  interactionDetails: (req: IncomingMessage, res: ServerResponse) => Promise<Interaction>
  interactionFinished: (
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean }
  ) => Promise<void>
  Grant: {
    new (init: { accountId: string, clientId: string }): Grant
    find: (id: string) => Promise<Grant | undefined>
  }
  on: (event: string, listener: (...args: unknown[]) => void) => unknown
}

interface Interaction {
  uid: string
  prompt: { name: string, reasons: string[], details: Record<string, unknown> }
  params: Record<string, unknown>
  session?: { accountId?: string }
  grantId?: string
}

interface Grant {
  addOIDCScope: (scope: string) => void
  addOIDCClaims: (claims: string[]) => void
  save: () => Promise<string>
}

const Provider = ProviderModule as unknown as new (issuer: string, configuration: Record<string, unknown>) => OidcProvider

/** Scope → claims it releases. */
const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['preferred_username', 'name'],
  email: ['email', 'email_verified'],
  groups: ['groups']
}

// Fixed, obviously non-secret key for oidc-provider's signed cookies.
const COOKIE_KEYS = ['authgate-test-oidc-provider-cookie-key']

export async function startOidcProvider (opts: StartOidcProviderOptions): Promise<OidcProviderFixture> {
  const accounts = new Map<string, AccountClaims>(
    opts.accounts instanceof Map ? opts.accounts : Object.entries(opts.accounts)
  )
  const calls: RecordedCall[] = []
  const serverErrors: unknown[] = []
  const endSession = opts.endSession ?? true

  /** accountId (= sub) → [map key, claims]. The sub defaults to the map key. */
  const findByAccountId = (accountId: string): AccountClaims | undefined => {
    for (const [key, claims] of accounts) {
      if ((claims.sub ?? key) === accountId) return claims
    }
    return undefined
  }
  /** The login field accepts the account key, its sub, or its preferred_username. */
  const findByLogin = (login: string): { accountId: string } | undefined => {
    for (const [key, claims] of accounts) {
      if (login === key || login === claims.sub || login === claims.preferred_username) {
        return { accountId: claims.sub ?? key }
      }
    }
    return undefined
  }

  const signingKey = await generateKeyPair('RS256', { extractable: true })
  const jwk = { ...(await exportJWK(signingKey.privateKey)), kid: `op-${randomUUID()}`, use: 'sig', alg: 'RS256' }

  // The issuer must be known before the Provider exists, so listen first on an
  // ephemeral port and dispatch to the provider once it is constructed.
  let dispatch: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503
    res.end()
  }
  const server = createServer((req, res) => {
    calls.push({ method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0] ?? '/', time: Date.now() })
    dispatch(req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const issuer = `http://127.0.0.1:${port}`

  const fixture: OidcProviderFixture = {
    issuer,
    url: issuer,
    port,
    provider: undefined as unknown as OidcProvider,
    accounts,
    calls,
    serverErrors,
    outgoing: (url) => url,
    pages: new Map(),
    backchannel: [],
    signingKey: { privateKey: signingKey.privateKey, kid: jwk.kid },
    close: () => closeServer(server)
  }
  const provider = new Provider(issuer, {
    clients: opts.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
      grant_types: opts.refreshTokens === true ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_post',
      ...(c.backchannel_logout_uri !== undefined ? { backchannel_logout_uri: c.backchannel_logout_uri } : {}),
      ...(c.backchannel_logout_session_required !== undefined ? { backchannel_logout_session_required: c.backchannel_logout_session_required } : {})
    })),
    adapter: memoryAdapter(),
    jwks: { keys: [jwk] },
    cookies: { keys: COOKIE_KEYS },
    claims: SCOPE_CLAIMS,
    scopes: ['openid', 'profile', 'email', 'groups'],
    conformIdTokenClaims: !(opts.idTokenClaims ?? true),
    ...(opts.refreshTokens === true
      ? {
          issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed: (grant: string) => boolean }) => client.grantTypeAllowed('refresh_token'),
          rotateRefreshToken: () => true
        }
      : {}),
    pkce: { required: () => true }, // v9 only implements S256
    clientBasedCORS: () => false,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: endSession,
        logoutSource,
        postLogoutSuccessSource
      },
      backchannelLogout: { enabled: opts.backchannelLogout ?? false }
    },
    // oidc-provider passes an undici dispatcher that refuses loopback and private addresses (SSRF
    // protection); the test gateways are on 127.0.0.1, so it is dropped here, in the fixture only.
    async fetch (url: string | URL, options: RequestInit & { dispatcher?: unknown }) {
      const { dispatcher: _dropped, ...rest } = options
      return await globalThis.fetch(fixture.outgoing(new URL(url)), rest)
    },
    // Short but not flaky: long enough for a slow CI machine.
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600
    },
    renderError,
    async findAccount (_ctx: unknown, sub: string) {
      if (!findByAccountId(sub)) return undefined
      return {
        accountId: sub,
        // Read the map on every call so runtime edits show up in the next
        // ID Token / userinfo response. oidc-provider filters by scope.
        async claims () {
          const current = findByAccountId(sub) ?? {}
          return { ...structuredClone(current), sub }
        }
      }
    }
  })
  const backchannel: BackchannelAttempt[] = []
  provider.on('backchannel.success', (_ctx, client) => { backchannel.push({ clientId: (client as { clientId: string }).clientId, ok: true }) })
  provider.on('backchannel.error', (_ctx, error, client) => { backchannel.push({ clientId: (client as { clientId: string }).clientId, ok: false, error: String(error) }) })
  provider.on('server_error', (_ctx, error) => {
    serverErrors.push(error)
    console.error('oidc-provider fixture server_error:', error)
  })

  fixture.provider = provider
  fixture.backchannel = backchannel
  const providerCallback = provider.callback()
  dispatch = (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const extra = fixture.pages.get(path)
    if (extra !== undefined) {
      sendHtml(res, 200, extra)
      return
    }
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm))?$/.exec(path)
    if (!m) {
      providerCallback(req, res)
      return
    }
    handleInteraction(req, res, m[1] ?? '', m[2]).catch((error: unknown) => {
      if (!res.headersSent) {
        sendHtml(res, 400, page('Interaction failed', `<p id="error">${escapeHtml(String(error))}</p>`))
      } else {
        res.destroy()
      }
    })
  }

  /** GET /interaction/:uid, POST /interaction/:uid/login, POST /interaction/:uid/confirm */
  async function handleInteraction (
    req: IncomingMessage,
    res: ServerResponse,
    pathUid: string,
    action: string | undefined
  ): Promise<void> {
    // The interaction is identified by its cookie; the uid in the path must agree.
    const interaction = await provider.interactionDetails(req, res)
    const { uid, prompt, params } = interaction
    if (decodeURIComponent(pathUid) !== uid) throw new Error('interaction uid does not match its cookie')
    const clientId = String(params['client_id'] ?? '')

    if (req.method === 'GET' && action === undefined) {
      if (prompt.name === 'login') {
        sendHtml(res, 200, loginPage(uid, clientId))
      } else if (prompt.name === 'consent') {
        sendHtml(res, 200, consentPage(uid, clientId, String(params['scope'] ?? '')))
      } else {
        throw new Error(`unsupported prompt ${prompt.name}`)
      }
      return
    }

    if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
      const form = await readForm(req)
      const login = form.get('login') ?? ''
      const password = form.get('password') ?? ''
      const account = findByLogin(login)
      const passwordOk = opts.password === undefined ? password !== '' : password === opts.password
      if (!account || !passwordOk) {
        sendHtml(res, 200, loginPage(uid, clientId, 'Invalid login or password.'))
        return
      }
      // Complete login and consent in one step: there is no user to ask.
      const grantId = await grantFor(interaction, account.accountId, clientId)
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: account.accountId }, consent: { grantId } },
        { mergeWithLastSubmission: false }
      )
      return
    }

    if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
      await readForm(req)
      const accountId = interaction.session?.accountId
      if (!accountId) throw new Error('consent without a signed-in account')
      const grantId = await grantFor(interaction, accountId, clientId)
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
      return
    }

    throw new Error(`unexpected ${req.method} ${action ?? ''} during prompt ${prompt.name}`)
  }

  /** Grants every requested scope and every claim named in a `claims` request parameter. */
  async function grantFor (interaction: Interaction, accountId: string, clientId: string): Promise<string> {
    const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined
    const grant = existing ?? new provider.Grant({ accountId, clientId })
    grant.addOIDCScope(String(interaction.params['scope'] ?? 'openid'))
    const requestedClaims = requestedClaimNames(interaction.params['claims'])
    if (requestedClaims.length) grant.addOIDCClaims(requestedClaims)
    return grant.save()
  }

  return fixture
}

/**
 * Per-fixture in-memory storage. oidc-provider's built-in MemoryAdapter would
 * do, but it prints a "MUST change" warning for every provider; this one is
 * also private to each fixture instance.
 */
function memoryAdapter (): (model: string) => Record<string, (...args: never[]) => Promise<unknown>> {
  type Payload = Record<string, unknown>
  const store = new Map<string, { payload: Payload, expiresAt: number }>()
  const sessionIdByUid = new Map<string, string>()
  // Models whose records die with their grant (revokeByGrantId).
  const grantBound = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'])
  const live = (key: string): Payload | undefined => {
    const entry = store.get(key)
    if (entry && entry.expiresAt <= Date.now()) store.delete(key)
    return entry && entry.expiresAt > Date.now() ? entry.payload : undefined
  }
  return (model: string) => {
    const key = (id: string): string => `${model}:${id}`
    return {
      async upsert (id: string, payload: Payload, expiresIn?: number) {
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity
        store.set(key(id), { payload, expiresAt })
        if (model === 'Session' && typeof payload['uid'] === 'string') sessionIdByUid.set(payload['uid'], id)
      },
      async find (id: string) {
        return live(key(id))
      },
      async findByUid (uid: string) {
        const id = sessionIdByUid.get(uid)
        return id === undefined ? undefined : live(key(id))
      },
      async findByUserCode () {
        return undefined // device flow is not enabled
      },
      async consume (id: string) {
        const payload = live(key(id))
        if (payload) payload['consumed'] = Math.floor(Date.now() / 1000)
      },
      async destroy (id: string) {
        store.delete(key(id))
      },
      async revokeByGrantId (grantId: string) {
        for (const [k, entry] of store) {
          if (grantBound.has(k.slice(0, k.indexOf(':'))) && entry.payload['grantId'] === grantId) store.delete(k)
        }
      }
    }
  }
}

function requestedClaimNames (claimsParam: unknown): string[] {
  if (typeof claimsParam !== 'string' || claimsParam === '') return []
  try {
    const parsed = JSON.parse(claimsParam) as Record<string, Record<string, unknown> | null>
    const names = new Set<string>()
    for (const member of ['id_token', 'userinfo']) {
      for (const name of Object.keys(parsed[member] ?? {})) names.add(name)
    }
    return [...names]
  } catch {
    return []
  }
}

async function readForm (req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

/** Closes `server`, also dropping idle keep-alive connections. */
export function closeServer (server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    // fetch (undici) keeps connections alive; do not wait for them to time out.
    server.closeAllConnections()
  })
}

function sendHtml (res: ServerResponse, status: number, html: string): void {
  res.statusCode = status
  res.setHeader('content-type', 'text/html; charset=utf-8')
  res.setHeader('cache-control', 'no-store')
  res.end(html)
}

function escapeHtml (value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

function page (title: string, body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`
}

function loginPage (uid: string, clientId: string, error?: string): string {
  return page(
    'Sign in',
    `<p>Signing in to <code>${escapeHtml(clientId)}</code></p>` +
      (error ? `<p id="login-error" role="alert">${escapeHtml(error)}</p>` : '') +
      `<form method="post" action="/interaction/${encodeURIComponent(uid)}/login">` +
      '<label>Login <input type="text" name="login" autocomplete="username"></label>' +
      '<label>Password <input type="password" name="password" autocomplete="current-password"></label>' +
      '<button type="submit">Sign in</button></form>'
  )
}

function consentPage (uid: string, clientId: string, scope: string): string {
  return page(
    'Authorize',
    `<p><code>${escapeHtml(clientId)}</code> asks for <code>${escapeHtml(scope)}</code></p>` +
      `<form method="post" action="/interaction/${encodeURIComponent(uid)}/confirm">` +
      '<button type="submit">Allow</button></form>'
  )
}

// oidc-provider's default pages pull web fonts and log a notice on first use;
// these plain versions keep the same form contract (the `form` argument holds
// the <form id="op.logoutForm"> with the hidden xsrf input).
async function logoutSource (ctx: { body: unknown, host: string }, form: string): Promise<void> {
  ctx.body = page(
    'Sign out',
    `<p>Do you want to sign out from ${escapeHtml(ctx.host)}?</p>${form}` +
      '<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>' +
      '<button type="submit" form="op.logoutForm">No, stay signed in</button>'
  )
}

async function postLogoutSuccessSource (ctx: { body: unknown }): Promise<void> {
  ctx.body = page('Signed out', '<p id="signed-out">Your sign-out was successful.</p>')
}

async function renderError (ctx: { type: string, body: unknown }, out: Record<string, string>): Promise<void> {
  ctx.type = 'html'
  ctx.body = page(
    'Error',
    Object.entries(out)
      .map(([k, v]) => `<p class="${escapeHtml(k)}">${escapeHtml(k)}: ${escapeHtml(String(v))}</p>`)
      .join('')
  )
}
