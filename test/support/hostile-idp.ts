/**
 * A hand-written OpenID Provider on node:http + jose that can misbehave in one
 * chosen way per test, to prove that a relying party rejects what it must.
 * It has no login page: /authorize redirects straight back to the relying
 * party with a code, as if the user were already signed in.
 *
 * It is deliberately lenient wherever leniency is not the point (no consent,
 * any scope accepted) and strict where a well-behaved IdP is strict (client
 * authentication, one-time codes, redirect_uri binding, PKCE S256), so that a
 * relying party bug shows up as a failure here rather than passing silently.
 */
import { createHash, createSecretKey, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'

export type Misbehaviour =
  /** Behaves well. */
  | 'none'
  /** ID Token signed with a key that is not in the JWKS, under the kid of one that is. */
  | 'bad-signature'
  /** Unsigned ID Token (`alg: none`). */
  | 'alg-none'
  /** ID Token `iss` is another issuer. */
  | 'wrong-iss'
  /** ID Token `aud` is another client. */
  | 'wrong-aud'
  /** ID Token expired half an hour ago. */
  | 'expired'
  /** ID Token without `iat`. */
  | 'missing-iat'
  /** ID Token `nonce` is not the one sent in the authorization request. */
  | 'wrong-nonce'
  /** Authorization response carries a different `state`. */
  | 'wrong-state'
  /** Authorization response lacks `iss` although discovery advertises RFC 9207 support. */
  | 'missing-iss-param'
  /** Authorization response `iss` is another issuer. */
  | 'wrong-iss-param'
  /** userinfo returns a `sub` different from the ID Token's. */
  | 'userinfo-sub-mismatch'
  /**
   * Key rotation: ID Tokens are signed with key B (a new kid) while the JWKS
   * serves only key A on its first fetch; from the second fetch on it serves
   * A and B. A relying party that refetches the JWKS on an unknown kid
   * succeeds. (Counting restarts at every setMisbehave call.)
   */
  | 'unknown-kid-then-rotate'
  /**
   * The JWKS, token or userinfo response is valid JSON padded to HUGE_RESPONSE_BYTES and sent
   * chunked, without Content-Length: only a client that counts the bytes as they arrive can stop it.
   */
  | 'chunked-huge-jwks'
  | 'chunked-huge-token'
  | 'chunked-huge-userinfo'
  /**
   * The token endpoint refuses the client as LemonLDAP::NG does after a failed Basic authentication:
   * 401 with `WWW-Authenticate: Basic …error="invalid_client"…` (RFC 6749 §5.2), whatever was sent.
   */
  | 'token-401-challenge'
  /** userinfo answers 401 with `WWW-Authenticate: Bearer error="invalid_token"…` (RFC 6750 §3.1). */
  | 'userinfo-401-challenge'
  /** userinfo answers 401 with LemonLDAP::NG's challenge, which has no scheme: `error=invalid_request,error_description=Invalid request`. */
  | 'userinfo-401-bare-challenge'
  /** ID Token signed with HS512 keyed by the client secret (LemonLDAP::NG's default for a new client). */
  | 'hs512-id-token'

export const MISBEHAVIOURS: readonly Misbehaviour[] = [
  'none',
  'bad-signature',
  'alg-none',
  'wrong-iss',
  'wrong-aud',
  'expired',
  'missing-iat',
  'wrong-nonce',
  'wrong-state',
  'missing-iss-param',
  'wrong-iss-param',
  'userinfo-sub-mismatch',
  'unknown-kid-then-rotate',
  'chunked-huge-jwks',
  'chunked-huge-token',
  'chunked-huge-userinfo',
  'token-401-challenge',
  'userinfo-401-challenge',
  'userinfo-401-bare-challenge',
  'hs512-id-token'
]

/** Size of the chunked-huge-* responses: far above any sane limit, small enough to send in a test. */
export const HUGE_RESPONSE_BYTES = 64 * 1024 * 1024

/** One chunked-huge-* response: how much was written, and whether the client read it to the end. */
export interface HugeResponseRecord {
  path: string
  bytesWritten: number
  /** false: the client closed the connection before the end (it stopped reading). */
  completed: boolean
}

/**
 * How a hanging endpoint hangs: `no-answer` reads the request and never answers; `mid-body` sends
 * 200, the headers and the start of a JSON body, then nothing more. Either way until the client gives up.
 */
export type HangMode = 'no-answer' | 'mid-body'

/** A request left hanging (setHang); `open` turns false when the client closed the connection. */
export interface HungRequest {
  path: string
  mode: HangMode
  open: boolean
}

/** End-user claims released in the ID Token and at userinfo. Any JSON shape is allowed. */
export type HostileClaims = Record<string, unknown>

/** The default user. Spread it to override one claim: `{ ...DEFAULT_HOSTILE_CLAIMS, groups: 'admins' }`. */
export const DEFAULT_HOSTILE_CLAIMS: Readonly<HostileClaims> = Object.freeze({
  sub: 'hostile-user-1',
  preferred_username: 'mallory',
  name: 'Mallory Example',
  email: 'mallory@example.test',
  email_verified: true,
  groups: ['staff']
})

/**
 * Per-test overrides of the authorization response parameters. A string
 * replaces the value, `null` omits the parameter.
 */
export interface AuthorizeResponseOverrides {
  code?: string | null
  state?: string | null
  iss?: string | null
  /** Answer with `error` (e.g. 'access_denied') instead of a code. */
  error?: string
  error_description?: string
  /** Extra query parameters appended to the redirect. */
  extra?: Record<string, string>
}

export interface StartHostileIdpOptions {
  clientId?: string
  clientSecret?: string
  misbehave?: Misbehaviour
  /** Replaces DEFAULT_HOSTILE_CLAIMS. `sub` defaults to DEFAULT_HOSTILE_CLAIMS.sub. */
  claims?: HostileClaims
  /** Advertise `authorization_response_iss_parameter_supported` and send `iss`. Default true. */
  issParameterSupported?: boolean
  /** Advertise and serve end_session_endpoint (/logout). Default true. */
  endSession?: boolean
  /** Put the end-user claims in the ID Token (they are always at userinfo). Default true. */
  idTokenClaims?: boolean
  /** ID Token signing algorithm. Both are advertised. Default RS256. */
  signingAlg?: 'RS256' | 'ES256'
  /** When set, /authorize rejects any other redirect_uri. */
  redirectUris?: string[]
  authorizeResponse?: AuthorizeResponseOverrides
}

export interface HostileCall {
  method: string
  /** Path without the query string. */
  path: string
  time: number
}

/** What the relying party sent to /authorize. */
export interface AuthorizeRequestRecord {
  params: Record<string, string>
  state: string | undefined
  nonce: string | undefined
  code_challenge: string | undefined
  code_challenge_method: string | undefined
  redirect_uri: string | undefined
  scope: string | undefined
}

/** What the relying party sent to /token, and how it authenticated. */
export interface TokenRequestRecord {
  params: Record<string, string>
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'none'
  /** Error returned, if the request was rejected. */
  error: string | undefined
}

export interface HostileIdpFixture {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  issuer: string
  url: string
  port: number
  clientId: string
  clientSecret: string
  calls: HostileCall[]
  authorizeRequests: AuthorizeRequestRecord[]
  tokenRequests: TokenRequestRecord[]
  endSessionRequests: Array<Record<string, string>>
  /** The chunked-huge-* responses, settled (finished or aborted) ones only. */
  hugeResponses: HugeResponseRecord[]
  /** Current misbehaviour. */
  readonly misbehave: Misbehaviour
  setMisbehave: (m: Misbehaviour) => void
  /** Replaces the end-user claims (for the next token and userinfo responses). */
  setClaims: (c: HostileClaims) => void
  /** Replaces the authorization response overrides (`{}` to clear). */
  setAuthorizeResponse: (o: AuthorizeResponseOverrides) => void
  /** From now on, requests to `path` (e.g. '/token') hang this way; undefined: answered again. Hung ones stay hung. */
  setHang: (path: string, mode: HangMode | undefined) => void
  /** Every request left hanging, in arrival order. */
  hungRequests: HungRequest[]
  /** The IdP goes down: it stops listening and drops every connection (state and keys are kept). */
  goDown: () => Promise<void>
  /** Back up on the same port, with the same state and keys. */
  comeBack: () => Promise<void>
  close: () => Promise<void>
}

type Alg = 'RS256' | 'ES256'
type KeyRole = 'a' | 'b' | 'rogue'
interface SigningKey {
  kid: string
  privateKey: CryptoKey
  publicJwk: JWK
}

interface IssuedCode {
  clientId: string
  redirectUri: string
  codeChallenge: string
  nonce: string | undefined
  scope: string
  expiresAt: number
  used: boolean
}

const CODE_TTL_S = 60
const TOKEN_TTL_S = 300
const EVIL_ISSUER = 'https://evil.invalid'

export async function startHostileIdp (opts: StartHostileIdpOptions = {}): Promise<HostileIdpFixture> {
  const clientId = opts.clientId ?? 'authgate'
  const clientSecret = opts.clientSecret ?? 'authgate-hostile-secret'
  const issParameterSupported = opts.issParameterSupported ?? true
  const endSession = opts.endSession ?? true
  const idTokenClaims = opts.idTokenClaims ?? true
  const signingAlg: Alg = opts.signingAlg ?? 'RS256'

  let misbehave: Misbehaviour = opts.misbehave ?? 'none'
  let claims: HostileClaims = structuredClone(opts.claims ?? DEFAULT_HOSTILE_CLAIMS)
  let authorizeOverrides: AuthorizeResponseOverrides = { ...opts.authorizeResponse }
  /** JWKS fetches since the current misbehaviour was selected. */
  let jwksFetches = 0

  const calls: HostileCall[] = []
  const authorizeRequests: AuthorizeRequestRecord[] = []
  const tokenRequests: TokenRequestRecord[] = []
  const endSessionRequests: Array<Record<string, string>> = []
  const hugeResponses: HugeResponseRecord[] = []
  const codes = new Map<string, IssuedCode>()
  const accessTokens = new Map<string, { expiresAt: number }>()

  // Keys are generated on first use (RSA generation is the slow part).
  const keys = new Map<string, Promise<SigningKey>>()
  const keyFor = (alg: Alg, role: KeyRole): Promise<SigningKey> => {
    const id = `${alg}:${role}`
    let key = keys.get(id)
    if (!key) {
      // The rogue key deliberately reuses key A's kid.
      const kid = `${alg === 'RS256' ? 'rsa' : 'ec'}-${role === 'rogue' ? 'a' : role}`
      key = generateKeyPair(alg, { extractable: true }).then(async ({ privateKey, publicKey }) => ({
        kid,
        privateKey,
        publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
      }))
      keys.set(id, key)
    }
    return key
  }
  await Promise.all([keyFor('RS256', 'a'), keyFor('ES256', 'a')])

  const hangs = new Map<string, HangMode>()
  const hungRequests: HungRequest[] = []
  function hang (req: IncomingMessage, res: ServerResponse, path: string, mode: HangMode): void {
    const record: HungRequest = { path, mode, open: true }
    hungRequests.push(record)
    // Without an answer 'close' comes only when the connection does: the client gave up (or close()).
    res.on('close', () => { record.open = false })
    req.resume()
    if (mode === 'mid-body') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.write('{"hanging":"')
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer)
    calls.push({ method: req.method ?? 'GET', path: url.pathname, time: Date.now() })
    const hangMode = hangs.get(url.pathname)
    if (hangMode !== undefined) {
      hang(req, res, url.pathname, hangMode)
      return
    }
    route(req, res, url).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(error) })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const issuer = `http://127.0.0.1:${port}`

  async function route (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return sendJson(res, 200, discoveryDocument())
      case '/jwks':
        if (misbehave === 'chunked-huge-jwks') return await sendHugeJson(res, url.pathname, await jwks())
        return sendJson(res, 200, await jwks())
      case '/authorize':
        return authorize(req, res, url)
      case '/token':
        return token(req, res)
      case '/userinfo':
        return userinfo(req, res)
      case '/logout':
        if (endSession) return logout(req, res, url)
        break
      default:
        break
    }
    sendJson(res, 404, { error: 'not_found' })
  }

  function discoveryDocument (): Record<string, unknown> {
    return {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      userinfo_endpoint: `${issuer}/userinfo`,
      jwks_uri: `${issuer}/jwks`,
      ...(endSession ? { end_session_endpoint: `${issuer}/logout` } : {}),
      ...(issParameterSupported ? { authorization_response_iss_parameter_supported: true } : {}),
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code'],
      subject_types_supported: ['public'],
      // HS512 too, as LemonLDAP::NG advertises it: refusing it must not depend on the metadata.
      id_token_signing_alg_values_supported: ['RS256', 'ES256', 'HS512'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['openid', 'profile', 'email', 'groups'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', ...Object.keys(claims)]
    }
  }

  async function jwks (): Promise<{ keys: JWK[] }> {
    const served = [(await keyFor('RS256', 'a')).publicJwk, (await keyFor('ES256', 'a')).publicJwk]
    // Key B appears only once the relying party has fetched the JWKS before.
    if (misbehave === 'unknown-kid-then-rotate' && jwksFetches >= 1) {
      served.push((await keyFor(signingAlg, 'b')).publicJwk)
    }
    jwksFetches += 1
    return { keys: served }
  }

  async function authorize (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const params = Object.fromEntries(url.searchParams)
    const record: AuthorizeRequestRecord = {
      params,
      state: params['state'],
      nonce: params['nonce'],
      code_challenge: params['code_challenge'],
      code_challenge_method: params['code_challenge_method'],
      redirect_uri: params['redirect_uri'],
      scope: params['scope']
    }
    authorizeRequests.push(record)

    // Errors a real IdP shows to the user instead of redirecting.
    const redirectUri = record.redirect_uri
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'invalid_request' })
    if (params['client_id'] !== clientId) return sendJson(res, 400, { error: 'invalid_client' })
    if (!redirectUri || !URL.canParse(redirectUri)) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'redirect_uri missing' })
    }
    if (opts.redirectUris && !opts.redirectUris.includes(redirectUri)) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'redirect_uri not registered' })
    }
    if (params['response_type'] !== 'code') {
      return sendJson(res, 400, { error: 'unsupported_response_type' })
    }
    if (!record.code_challenge || record.code_challenge_method !== 'S256') {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'PKCE with S256 is required' })
    }

    const response = new URLSearchParams()
    const o = authorizeOverrides
    if (o.error) {
      response.set('error', o.error)
      if (o.error_description) response.set('error_description', o.error_description)
    } else {
      const code = randomToken()
      codes.set(code, {
        clientId,
        redirectUri,
        codeChallenge: record.code_challenge,
        nonce: record.nonce,
        scope: record.scope ?? 'openid',
        expiresAt: Date.now() + CODE_TTL_S * 1000,
        used: false
      })
      setOrOmit(response, 'code', o.code, code)
    }

    let state = record.state
    if (misbehave === 'wrong-state') state = randomToken()
    setOrOmit(response, 'state', o.state, state)

    let iss: string | undefined = issParameterSupported ? issuer : undefined
    if (misbehave === 'missing-iss-param') iss = undefined
    if (misbehave === 'wrong-iss-param') iss = EVIL_ISSUER
    setOrOmit(response, 'iss', o.iss, iss)

    for (const [k, v] of Object.entries(o.extra ?? {})) response.set(k, v)

    const location = new URL(redirectUri)
    for (const [k, v] of response) location.searchParams.append(k, v)
    res.statusCode = 302
    res.setHeader('location', location.href)
    res.setHeader('cache-control', 'no-store')
    res.end()
  }

  async function token (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = req.method === 'POST' ? await readBody(req) : ''
    const params = Object.fromEntries(new URLSearchParams(body))
    const record: TokenRequestRecord = { params: redactSecret(params), authMethod: 'none', error: undefined }
    tokenRequests.push(record)
    const fail = (status: number, error: string, description: string, headers: Record<string, string> = {}): void => {
      record.error = error
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
      sendJson(res, status, { error, error_description: description })
    }

    if (req.method !== 'POST') return fail(405, 'invalid_request', 'POST required')
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return fail(400, 'invalid_request', 'form-encoded body required')
    }

    // Client authentication: exactly one of client_secret_basic / client_secret_post.
    const basic = parseBasicAuth(req.headers.authorization)
    const post = params['client_secret'] !== undefined
    if (basic && post) return fail(400, 'invalid_request', 'more than one client authentication method')
    let authenticated: { id: string | undefined, secret: string | undefined }
    if (basic) {
      record.authMethod = 'client_secret_basic'
      authenticated = basic
      if (params['client_id'] !== undefined && params['client_id'] !== basic.id) {
        return fail(400, 'invalid_request', 'client_id mismatch')
      }
    } else {
      record.authMethod = post ? 'client_secret_post' : 'none'
      authenticated = { id: params['client_id'], secret: params['client_secret'] }
    }
    if (misbehave === 'token-401-challenge') {
      return fail(401, 'invalid_client', 'client authentication failed',
        { 'www-authenticate': 'Basic realm="hostile-idp", error="invalid_client", error_description="client authentication failed"' })
    }
    if (authenticated.id !== clientId || authenticated.secret !== clientSecret) {
      return fail(401, 'invalid_client', 'client authentication failed', basic ? { 'www-authenticate': 'Basic realm="hostile-idp"' } : {})
    }

    if (params['grant_type'] !== 'authorization_code') {
      return fail(400, 'unsupported_grant_type', 'only authorization_code')
    }
    const issued = codes.get(params['code'] ?? '')
    if (!issued || issued.used || issued.expiresAt < Date.now()) {
      return fail(400, 'invalid_grant', 'unknown, used or expired code')
    }
    issued.used = true // one-time, even when the rest of the request is wrong
    if (params['redirect_uri'] !== issued.redirectUri) {
      return fail(400, 'invalid_grant', 'redirect_uri does not match the authorization request')
    }
    const verifier = params['code_verifier']
    if (!verifier || createHash('sha256').update(verifier).digest('base64url') !== issued.codeChallenge) {
      return fail(400, 'invalid_grant', 'PKCE verification failed')
    }

    const accessToken = randomToken()
    accessTokens.set(accessToken, { expiresAt: Date.now() + TOKEN_TTL_S * 1000 })
    const tokenResponse = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: TOKEN_TTL_S,
      scope: issued.scope,
      id_token: await idToken(issued)
    }
    if (misbehave === 'chunked-huge-token') return await sendHugeJson(res, '/token', tokenResponse)
    sendJson(res, 200, tokenResponse)
  }

  async function idToken (issued: IssuedCode): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    const { sub: _ignored, ...endUser } = claims
    const payload: JWTPayload & Record<string, unknown> = {
      ...(idTokenClaims ? endUser : {}),
      iss: issuer,
      sub: subject(),
      aud: issued.clientId,
      iat: now,
      exp: now + TOKEN_TTL_S,
      auth_time: now,
      ...(issued.nonce !== undefined ? { nonce: issued.nonce } : {})
    }
    switch (misbehave) {
      case 'wrong-iss':
        payload.iss = EVIL_ISSUER
        break
      case 'wrong-aud':
        payload.aud = 'some-other-client'
        break
      case 'expired':
        payload.iat = now - 3600
        payload.auth_time = now - 3600
        payload.exp = now - 1800
        break
      case 'missing-iat':
        delete payload.iat
        break
      case 'wrong-nonce':
        payload['nonce'] = 'not-the-nonce-you-sent'
        break
      default:
        break
    }

    if (misbehave === 'alg-none') return new UnsecuredJWT(payload).encode()
    if (misbehave === 'hs512-id-token') {
      return new SignJWT(payload).setProtectedHeader({ alg: 'HS512', typ: 'JWT' }).sign(createSecretKey(Buffer.from(clientSecret)))
    }
    const role: KeyRole =
      misbehave === 'bad-signature' ? 'rogue' : misbehave === 'unknown-kid-then-rotate' ? 'b' : 'a'
    const key = await keyFor(signingAlg, role)
    return new SignJWT(payload).setProtectedHeader({ alg: signingAlg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey)
  }

  function subject (): string {
    const sub = claims['sub']
    return typeof sub === 'string' ? sub : String(DEFAULT_HOSTILE_CLAIMS['sub'])
  }

  async function userinfo (req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST') await readBody(req)
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    const known = match?.[1] ? accessTokens.get(match[1]) : undefined
    if (misbehave === 'userinfo-401-bare-challenge') {
      res.statusCode = 401
      res.setHeader('www-authenticate', 'error=invalid_request,error_description=Invalid request')
      res.end()
      return
    }
    if (!known || known.expiresAt < Date.now() || misbehave === 'userinfo-401-challenge') {
      res.setHeader('www-authenticate', 'Bearer error="invalid_token", error_description="the access token is not valid"')
      return sendJson(res, 401, { error: 'invalid_token' })
    }
    const sub = misbehave === 'userinfo-sub-mismatch' ? `${subject()}-someone-else` : subject()
    if (misbehave === 'chunked-huge-userinfo') return await sendHugeJson(res, '/userinfo', { ...structuredClone(claims), sub })
    sendJson(res, 200, { ...structuredClone(claims), sub })
  }

  /** Resolves on 'drain' or 'close', whichever comes first, and removes both listeners: one left per
   * wait would pile up over the ~60 waits of a huge answer (MaxListenersExceededWarning). */
  function drainedOrClosed (res: ServerResponse): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
      res.on('drain', done)
      res.on('close', done)
    })
  }

  /** `body` plus a "padding" member that makes it HUGE_RESPONSE_BYTES, chunked, honouring backpressure. */
  async function sendHugeJson (res: ServerResponse, path: string, body: Record<string, unknown>): Promise<void> {
    const head = JSON.stringify(body).slice(0, -1) + ',"padding":"'
    const chunk = 'x'.repeat(64 * 1024)
    const record: HugeResponseRecord = { path, bytesWritten: 0, completed: false }
    let closed = false
    res.on('close', () => { closed = true })
    res.statusCode = 200
    res.setHeader('content-type', 'application/json')
    res.setHeader('cache-control', 'no-store')
    const write = async (data: string): Promise<void> => {
      record.bytesWritten += data.length
      if (!res.write(data)) await drainedOrClosed(res)
    }
    await write(head)
    // eslint-disable-next-line no-unmodified-loop-condition -- the 'close' listener sets it while write() awaits
    while (!closed && record.bytesWritten + chunk.length + 2 <= HUGE_RESPONSE_BYTES) await write(chunk)
    if (!closed) {
      res.end('"}')
      await new Promise<void>((resolve) => { res.once('finish', resolve); res.once('close', resolve) })
      record.completed = res.writableFinished
    }
    hugeResponses.push(record)
  }

  async function logout (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const params = Object.fromEntries(
      req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams
    )
    endSessionRequests.push(params)
    const target = params['post_logout_redirect_uri']
    if (target && URL.canParse(target)) {
      const location = new URL(target)
      if (params['state'] !== undefined) location.searchParams.set('state', params['state'])
      res.statusCode = 302
      res.setHeader('location', location.href)
      res.end()
      return
    }
    res.statusCode = 200
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end('<!DOCTYPE html><html><body><h1>Signed out</h1></body></html>')
  }

  return {
    issuer,
    url: issuer,
    port,
    clientId,
    clientSecret,
    calls,
    authorizeRequests,
    tokenRequests,
    endSessionRequests,
    hugeResponses,
    get misbehave () {
      return misbehave
    },
    setMisbehave (m: Misbehaviour) {
      misbehave = m
      jwksFetches = 0
    },
    setClaims (c: HostileClaims) {
      claims = structuredClone(c)
    },
    setAuthorizeResponse (o: AuthorizeResponseOverrides) {
      authorizeOverrides = { ...o }
    },
    setHang (path: string, mode: HangMode | undefined) {
      if (mode === undefined) hangs.delete(path)
      else hangs.set(path, mode)
    },
    hungRequests,
    goDown: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      }),
    comeBack: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
      }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Already down (goDown without comeBack): nothing left to close.
        if (!server.listening) { resolve(); return }
        server.close((error) => (error ? reject(error) : resolve()))
        // fetch (undici) keeps connections alive; do not wait for them to time out.
        server.closeAllConnections()
      })
  }
}

/** Sets `name` to the override (null = omit) or, without override, to the default (undefined = omit). */
function setOrOmit (target: URLSearchParams, name: string, override: string | null | undefined, fallback: string | undefined): void {
  const value = override === undefined ? fallback : override
  if (value !== null && value !== undefined) target.set(name, value)
}

function randomToken (): string {
  return randomBytes(24).toString('base64url')
}

/** RFC 6749 §2.3.1: client id and secret are form-urlencoded before base64. */
function parseBasicAuth (header: string | undefined): { id: string, secret: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '')
  if (!m?.[1]) return undefined
  const decoded = Buffer.from(m[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return undefined
  const formDecode = (s: string): string => decodeURIComponent(s.replace(/\+/g, ' '))
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) }
  } catch {
    return undefined
  }
}

function redactSecret (params: Record<string, string>): Record<string, string> {
  return params['client_secret'] === undefined ? params : { ...params, client_secret: '[redacted]' }
}

async function readBody (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status
  res.setHeader('content-type', 'application/json')
  res.setHeader('cache-control', 'no-store')
  res.end(JSON.stringify(body))
}
