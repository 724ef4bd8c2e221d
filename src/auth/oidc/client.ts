// The relying party: openid-client v6, configured by discovery from OIDC_ISSUER. Discovery runs in
// the background with exponential backoff, so the gateway starts (and serves local sign-in and
// existing sessions) while the IdP is unreachable; until it succeeds SSO answers "unavailable" and
// readiness says why. Every protocol check is openid-client's; this file only wires them.
import * as client from 'openid-client'
import type { FastifyBaseLogger } from 'fastify'
import type { OidcConfig } from '../../config/index.js'
import { isLoopbackHost } from '../../config/net.js'
import type { OidcTransaction } from './transaction.js'
import { describeChallenges, describeError, describeRawChallenge, IdpRefusalError, SymmetricIdTokenError } from './errors.js'
import { untilAborted } from '../../net/until-aborted.js'
import type { IdpEndpoint, IdpOutcome } from '../../ops/metrics.js'

export interface OidcClientOptions {
  config: OidcConfig
  log: FastifyBaseLogger
  /** Discovery retry backoff: first delay and cap, in ms. */
  retry?: { initialMs: number, maxMs: number }
  /** Told how long each request to the IdP took, and how it ended (for the metrics). */
  observe?: (endpoint: IdpEndpoint, outcome: IdpOutcome, seconds: number) => void
}

export interface SignInResult {
  /** The ID token's `iss` (checked to be the discovered issuer) and `sub`: the identity's key. */
  issuer: string
  sub: string
  /** ID token claims, overlaid with userinfo (whose `sub` was checked to be the same). */
  claims: Record<string, unknown>
  idToken: string
  /** When the IdP issued one (see docs/OIDC_SETUP.md#sessions-that-follow-the-idp). */
  refreshToken: string | undefined
  /** The ID token's `sid` (the IdP session), when it sent one: IdP-initiated logout ends by it. */
  sid: string | undefined
}

/** A refresh token grant that succeeded. */
export interface RefreshResult {
  /** The new ID token's claims overlaid with userinfo, as at sign-in; undefined: the IdP gave neither. */
  claims: Record<string, unknown> | undefined
  /** The rotated refresh token, when the IdP rotates them (the old one must not be used again). */
  refreshToken: string | undefined
}

/** SSO is not usable yet (discovery has not succeeded): a re-validation is retried later. */
export class IdpNotReadyError extends Error {
  constructor () {
    super('OIDC discovery has not succeeded yet')
    this.name = 'IdpNotReadyError'
  }
}

/** IdP responses larger than this are refused: by Content-Length before reading, else while reading. */
export const MAX_RESPONSE_BYTES = 1024 * 1024
/** An unknown `kid` forces a JWKS refetch at most this often (ms); other failures never do. */
const FORCED_JWKS_REFRESH_INTERVAL = 10_000
/** /login/oidc retries discovery on demand at most this often (ms), on top of the backoff. */
const ON_DEMAND_INTERVAL = 1_000

/**
 * A request to the IdP got no usable answer: the connection refused or reset, the answer cut off, or
 * nothing within OIDC_TIMEOUT. The message names the endpoint; the cause is what openid-client threw.
 */
export class IdpUnreachableError extends Error {
  constructor (readonly endpoint: IdpEndpoint, readonly timedOut: boolean, detail: string, options: { cause: unknown }) {
    super(`${endpoint} request to the IdP: ${detail}`, options)
    this.name = 'IdpUnreachableError'
  }
}

/** The request of a sign-in that failed without an answer, noted by its fetch. */
interface FailedRequest { endpoint?: IdpEndpoint, error?: unknown }

/** `err` as an IdpUnreachableError when it is (or wraps) the failure of the noted request; else unchanged. */
function unreachable (err: unknown, failed: FailedRequest, timeoutSeconds: number): unknown {
  if (failed.endpoint === undefined) return err
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 4; e = e instanceof Error ? e.cause : undefined, depth++) {
    if (e !== failed.error) continue
    const timedOut = e instanceof DOMException && e.name === 'TimeoutError'
    return new IdpUnreachableError(failed.endpoint, timedOut, timedOut ? `no answer within ${timeoutSeconds} s (OIDC_TIMEOUT)` : 'no usable answer', { cause: err })
  }
  return err
}

export class IdpResponseTooLargeError extends Error {
  constructor (url: string, what: string) {
    super(`response from ${new URL(url).origin}${new URL(url).pathname} ${what}, more than the ${MAX_RESPONSE_BYTES} bytes accepted`)
    this.name = 'IdpResponseTooLargeError'
  }
}

/**
 * A 4xx/5xx with a WWW-Authenticate challenge from `endpoint`, as an IdpRefusalError with what the
 * provider said; any other error unchanged. openid-client throws WWWAuthenticateChallengeError for a
 * challenge it can parse, and a non-conform-response error (the Response as its cause) for one it cannot.
 */
async function asRefusal (err: unknown, endpoint: string): Promise<unknown> {
  let response: Response
  let challenge: string
  if (err instanceof client.WWWAuthenticateChallengeError) {
    response = err.response
    challenge = describeChallenges(err.cause)
  } else if (err instanceof Error && err.cause instanceof Response && err.cause.status >= 400 && err.cause.headers.has('www-authenticate')) {
    response = err.cause
    challenge = describeRawChallenge(err.cause.headers.get('www-authenticate') ?? '')
  } else {
    return err
  }
  const body: { error?: string, error_description?: string } = {}
  try {
    const json = await response.clone().json() as Record<string, unknown>
    if (typeof json['error'] === 'string') body.error = json['error'].slice(0, 100)
    if (typeof json['error_description'] === 'string') body.error_description = json['error_description'].slice(0, 200)
  } catch {}
  return new IdpRefusalError(endpoint, response.status, challenge, body, { cause: err })
}

/** The `alg` of the ID token in a token response, read without verifying anything (for the log only). */
async function idTokenAlg (tokenResponse: Response): Promise<string | undefined> {
  try {
    const body = await tokenResponse.clone().json() as { id_token?: unknown }
    if (typeof body.id_token !== 'string') return undefined
    const header = JSON.parse(Buffer.from(body.id_token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { alg?: unknown }
    return typeof header.alg === 'string' ? header.alg.slice(0, 20) : undefined
  } catch {
    return undefined
  }
}

/** Status codes whose Response may not have a body (the Response constructor refuses one). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304])

/**
 * fetch for every request to the IdP, memory bounded: the body is read here, counting bytes as they
 * arrive (after decompression), and the connection dropped past MAX_RESPONSE_BYTES. Content-Length
 * alone bounds nothing: a chunked answer has none, and a compressed one states the compressed size.
 */
export const boundedFetch: client.CustomFetch = async (url, options) => {
  const response = await fetch(url, options as RequestInit)
  const declared = Number(response.headers.get('content-length') ?? '0')
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel()
    throw new IdpResponseTooLargeError(url, `declares ${declared} bytes`)
  }
  if (response.body === null) return response
  const chunks: Uint8Array[] = []
  let received = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    received += value.byteLength
    if (received > MAX_RESPONSE_BYTES) {
      await reader.cancel()
      throw new IdpResponseTooLargeError(url, 'went on past the limit')
    }
    chunks.push(value)
  }
  const body = NULL_BODY_STATUS.has(response.status) ? null : Buffer.concat(chunks)
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
}

export class OidcClient {
  private metadata: client.ServerMetadata | undefined
  /** The IdP's signing keys, shared by all flows (each flow gets its own Configuration). */
  private jwksCache: client.ExportedJWKSCache | undefined
  private attempts = 0
  private lastError: string | undefined
  private lastAttemptAt = 0
  private nextAttemptAt = 0
  private inFlight: Promise<boolean> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private lastForcedJwksRefresh = 0
  private readonly insecure: boolean
  private readonly retry: { initialMs: number, maxMs: number }
  private readonly timeoutSeconds: number
  /** Every request to the IdP: boundedFetch, timed. */
  private readonly fetch: client.CustomFetch

  constructor (private readonly options: OidcClientOptions) {
    const { issuer } = options.config
    // http:// only for a loopback issuer (the config refuses any other); openid-client needs telling.
    this.insecure = issuer.protocol === 'http:' && isLoopbackHost(issuer.hostname)
    this.retry = options.retry ?? { initialMs: 1000, maxMs: 60_000 }
    // OIDC_TIMEOUT: openid-client aborts each request (discovery, token, userinfo, JWKS, refresh)
    // past it, body included (boundedFetch reads the body under the same signal).
    this.timeoutSeconds = options.config.timeout
    const observe = options.observe
    this.fetch = observe === undefined
      ? boundedFetch
      : async (url, init) => {
        const started = performance.now()
        let outcome: IdpOutcome = 'failed'
        try {
          const response = await boundedFetch(url, init)
          outcome = response.status < 400 ? 'ok' : 'error'
          return response
        } finally {
          observe(this.endpointOf(url), outcome, (performance.now() - started) / 1000)
        }
      }
  }

  /** Which of the IdP's endpoints a URL is, by the discovered metadata. */
  private endpointOf (url: string): IdpEndpoint {
    const href = new URL(url).href
    const m = this.metadata
    if (m === undefined || href.includes('/.well-known/openid-configuration')) return 'discovery'
    if (m.token_endpoint !== undefined && href === new URL(m.token_endpoint).href) return 'token'
    if (m.jwks_uri !== undefined && href === new URL(m.jwks_uri).href) return 'jwks'
    if (m.userinfo_endpoint !== undefined && href === new URL(m.userinfo_endpoint).href) return 'userinfo'
    return 'other'
  }

  get ready (): boolean {
    return this.metadata !== undefined
  }

  /** Discovery failed and has not succeeded since: the login page says this provider is unavailable. */
  get unavailable (): boolean {
    return this.metadata === undefined && this.lastError !== undefined
  }

  /** Start discovery in the background; never throws. */
  start (): void {
    void this.attempt()
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
  }

  /** undefined when SSO can be used, else why not (for /_authgate/readyz). */
  problem (): string | undefined {
    if (this.ready) return undefined
    if (this.attempts === 0 || this.lastError === undefined) return `discovery of ${this.options.config.issuer.href} in progress`
    const wait = Math.max(0, Math.round((this.nextAttemptAt - Date.now()) / 1000))
    return `discovery of ${this.options.config.issuer.href} failed ${this.attempts} time${this.attempts > 1 ? 's' : ''} (last: ${this.lastError}); retrying in ${wait}s`
  }

  /**
   * Ready, or one more discovery attempt now (at most every second, shared by concurrent callers),
   * waited for up to `waitMs`: the user who clicks "try again" after the IdP is back gets in.
   */
  async ensureReady (waitMs = 3000): Promise<boolean> {
    if (this.ready) return true
    if (this.inFlight === undefined && Date.now() - this.lastAttemptAt >= ON_DEMAND_INTERVAL) void this.attempt()
    if (this.inFlight === undefined) return false
    const deadline = AbortSignal.timeout(waitMs)
    try {
      return await untilAborted(this.inFlight, deadline)
    } catch (err) {
      if (err === deadline.reason) return false
      throw err
    }
  }

  private async attempt (): Promise<boolean> {
    if (this.inFlight !== undefined) return await this.inFlight
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.inFlight = (async () => {
      this.lastAttemptAt = Date.now()
      this.attempts += 1
      try {
        const { issuer, clientId } = this.options.config
        const discovered = await client.discovery(issuer, clientId, undefined, undefined, {
          execute: this.insecure ? [client.allowInsecureRequests] : [],
          timeout: this.timeoutSeconds,
          [client.customFetch]: this.fetch
        })
        const metadata = discovered.serverMetadata()
        if (metadata.authorization_endpoint === undefined || metadata.token_endpoint === undefined || metadata.jwks_uri === undefined) {
          throw new Error('the discovery document lacks authorization_endpoint, token_endpoint or jwks_uri')
        }
        this.metadata = metadata
        this.lastError = undefined
        this.options.log.info({ issuer: metadata.issuer, endSession: metadata.end_session_endpoint !== undefined, attempts: this.attempts }, 'OIDC provider discovered')
        return true
      } catch (err) {
        this.lastError = describeError(err)
        const delay = Math.min(this.retry.maxMs, this.retry.initialMs * 2 ** Math.min(this.attempts - 1, 20))
        const jittered = Math.round(delay * (0.8 + Math.random() * 0.4))
        this.nextAttemptAt = Date.now() + jittered
        this.options.log.warn({ issuer: this.options.config.issuer.href, attempts: this.attempts, err: this.lastError, retryInMs: jittered }, 'OIDC discovery failed; SSO unavailable until it succeeds')
        if (!this.stopped) {
          this.timer = setTimeout(() => { void this.attempt() }, jittered)
          this.timer.unref()
        }
        return false
      } finally {
        this.inFlight = undefined
      }
    })()
    return await this.inFlight
  }

  /**
   * A Configuration for one flow, from the discovered metadata: cheap, and its own JWKS cache entry
   * inside openid-client (which lets a flow refetch the keys without touching the others).
   */
  private configuration (fetchImpl: client.CustomFetch, jwksCache: client.ExportedJWKSCache | undefined): client.Configuration {
    const { clientId, clientSecret, clientAuthMethod } = this.options.config
    const auth = clientAuthMethod === 'client_secret_basic' ? client.ClientSecretBasic(clientSecret) : client.ClientSecretPost(clientSecret)
    const config = new client.Configuration(this.metadata!, clientId, clientSecret, auth)
    if (this.insecure) client.allowInsecureRequests(config)
    config.timeout = this.timeoutSeconds
    config[client.customFetch] = fetchImpl
    // Verify the ID token's signature against the IdP's JWKS even though it came straight from the
    // token endpoint: openid-client otherwise trusts the TLS channel alone.
    client.enableNonRepudiationChecks(config)
    if (jwksCache !== undefined) client.setJwksCache(config, jwksCache)
    return config
  }

  /** Where /login/oidc sends the browser (PKCE S256, state, nonce). */
  async authorizationUrl (tx: OidcTransaction): Promise<URL> {
    const { scopes, redirectUri } = this.options.config
    return client.buildAuthorizationUrl(this.configuration(this.fetch, undefined), {
      redirect_uri: redirectUri.href,
      scope: scopes,
      code_challenge: await client.calculatePKCECodeChallenge(tx.verifier),
      code_challenge_method: 'S256',
      state: tx.state,
      nonce: tx.nonce
    })
  }

  /**
   * The callback: authorization response (state, RFC 9207 iss, error), code exchange, ID token
   * (iss, aud, exp, iat, nonce, signature), then userinfo whose `sub` must match. Throws on the
   * first failure, after which nothing more is sent to the IdP.
   */
  async signIn (callbackParams: URLSearchParams, tx: OidcTransaction): Promise<SignInResult> {
    const failed: FailedRequest = {}
    try {
      return await this.exchange(callbackParams, tx, failed)
    } catch (err) {
      throw unreachable(err, failed, this.timeoutSeconds)
    }
  }

  private async exchange (callbackParams: URLSearchParams, tx: OidcTransaction, failed: FailedRequest): Promise<SignInResult> {
    // Notes the request that got no usable answer (refused, reset, cut off, OIDC_TIMEOUT), for the log.
    const noting = (fetchImpl: client.CustomFetch): client.CustomFetch => async (url, options) => {
      try {
        return await fetchImpl(url, options)
      } catch (err) {
        if (!(err instanceof IdpResponseTooLargeError)) Object.assign(failed, { endpoint: this.endpointOf(url), error: err })
        throw err
      }
    }
    // openid-client derives the token request's redirect_uri from this URL: it must be the
    // configured one, whatever Host the request came in with.
    const currentUrl = new URL(this.options.config.redirectUri.href)
    currentUrl.search = callbackParams.toString()
    const checks = { pkceCodeVerifier: tx.verifier, expectedState: tx.state, expectedNonce: tx.nonce, idTokenExpected: true }
    const tokenEndpoint = new URL(this.metadata!.token_endpoint!).href

    let tokenResponse: Response | undefined
    const capturing: client.CustomFetch = noting(async (url, options) => {
      const response = await this.fetch(url, options)
      if (new URL(url).href === tokenEndpoint) tokenResponse = response.clone()
      return response
    })
    let config = this.configuration(capturing, this.jwksCache)
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>
    try {
      tokens = await client.authorizationCodeGrant(config, currentUrl, checks)
    } catch (err) {
      const alg = tokenResponse === undefined ? undefined : await idTokenAlg(tokenResponse)
      if (alg !== undefined && /^HS\d+$/i.test(alg)) throw new SymmetricIdTokenError(alg, { cause: err })
      const refusal = await asRefusal(err, 'token endpoint')
      if (refusal !== err) throw refusal
      // Signed with a key we have not seen: the IdP rotated keys. openid-client refetches its JWKS
      // only when its copy is a minute old; the code is spent, so validate the same token response
      // again (replayed from memory, no second token request) against a freshly fetched JWKS.
      const replayable = tokenResponse
      if ((err as { code?: unknown }).code !== 'OAUTH_KEY_SELECTION_FAILED' || replayable === undefined ||
        Date.now() - this.lastForcedJwksRefresh < FORCED_JWKS_REFRESH_INTERVAL) throw err
      this.lastForcedJwksRefresh = Date.now()
      this.options.log.info({ issuer: this.metadata!.issuer }, 'ID token signed with a key missing from the cached JWKS: fetching the JWKS again')
      config = this.configuration(noting(async (url, options) => new URL(url).href === tokenEndpoint ? replayable.clone() : await this.fetch(url, options)), undefined)
      tokens = await client.authorizationCodeGrant(config, currentUrl, checks)
    }
    this.jwksCache = client.getJwksCache(config) ?? this.jwksCache

    const idClaims = tokens.claims()
    if (idClaims === undefined || tokens.id_token === undefined) throw new Error('the token response has no ID token')
    let claims: Record<string, unknown> = { ...idClaims }
    if (this.metadata!.userinfo_endpoint !== undefined) {
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub).catch(async (err: unknown) => { throw await asRefusal(err, 'userinfo endpoint') })
      claims = { ...claims, ...userinfo }
    }
    const sid = typeof idClaims.sid === 'string' && idClaims.sid !== '' ? idClaims.sid : undefined
    return { issuer: idClaims.iss, sub: idClaims.sub, claims, idToken: tokens.id_token, refreshToken: tokens.refresh_token, sid }
  }

  /** The discovered metadata (issuer, jwks_uri, algorithms), or undefined before discovery succeeded. */
  get serverMetadata (): client.ServerMetadata | undefined {
    return this.metadata
  }

  /** The discovered issuer (the ID tokens' `iss`), once discovery succeeded. */
  get issuer (): string | undefined {
    return this.metadata?.issuer
  }

  /**
   * Re-validation (src/auth/oidc/revalidation.ts): a refresh token grant, then the claims read as
   * signIn reads them: the new ID token's (checked by openid-client: signature, iss, aud, exp) and
   * userinfo when the IdP has a userinfo endpoint. Both must be about `sub`, the session's subject.
   * Throws what openid-client throws (a ResponseBodyError `invalid_grant` when the IdP refuses).
   */
  async refresh (refreshToken: string, sub: string): Promise<RefreshResult> {
    if (this.metadata === undefined) throw new IdpNotReadyError()
    const config = this.configuration(this.fetch, this.jwksCache)
    const tokens = await client.refreshTokenGrant(config, refreshToken)
    this.jwksCache = client.getJwksCache(config) ?? this.jwksCache
    const idClaims = tokens.claims()
    if (idClaims !== undefined && idClaims.sub !== sub) throw new Error(`the refreshed ID token is about another subject (${idClaims.sub}, not ${sub})`)
    let claims: Record<string, unknown> | undefined = idClaims !== undefined ? { ...idClaims } : undefined
    if (this.metadata.userinfo_endpoint !== undefined) {
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub)
      claims = { ...claims, ...userinfo }
    }
    return { claims, refreshToken: tokens.refresh_token }
  }

  /** RP-initiated logout at the IdP, or undefined when it has no end_session_endpoint (or is unknown). */
  endSessionUrl (params: { idToken: string | undefined, postLogoutRedirectUri: URL | undefined, state: string }): URL | undefined {
    if (this.metadata?.end_session_endpoint === undefined) return undefined
    return client.buildEndSessionUrl(this.configuration(this.fetch, undefined), {
      // Without the ID token, openid-client sends client_id (it always adds it), which IdPs accept instead.
      ...(params.idToken !== undefined ? { id_token_hint: params.idToken } : {}),
      ...(params.postLogoutRedirectUri !== undefined ? { post_logout_redirect_uri: params.postLogoutRedirectUri.href } : {}),
      state: params.state
    })
  }
}
