// Verifying X-Identity-Assertion (IDENTITY_JWT): an ES256 compact JWS checked against the gateway's
// published keys. jose does the JOSE work (signature, key selection, JWKS fetching, time claims);
// this module keeps it narrow: one algorithm (ES256, so no algorithm confusion and no "none"), a kid
// required, no critical extensions, every identity claim checked for its type, and each failure
// reported as one of a few reasons instead of an exception.
import {
  createLocalJWKSet, createRemoteJWKSet, customFetch, errors, importJWK, jwksCache, jwtVerify,
  type CryptoKey, type JSONWebKeySet, type JWK, type JWTHeaderParameters, type JWTPayload, type KeyObject
} from 'jose'

/** The identity an assertion carries, once its signature, issuer, audience and times have verified. */
export interface VerifiedAssertion {
  /** `preferred_username`: the signed-in user's name at the gateway. */
  username: string
  /** `admin`: whether the gateway treats the user as an administrator. */
  isAdmin: boolean
  /** `email`, or null when the gateway knows none. */
  email: string | null
  /** `name`, or null when the gateway knows none. */
  fullName: string | null
  /** `groups`, in the gateway's order (empty when none). */
  groups: string[]
  /** `sub`: the gateway's stable user id (survives a username change). */
  subject: string
  /** `iat`, Unix seconds. */
  issuedAt: number
  /** `exp`, Unix seconds. */
  expiresAt: number
  /** `jti`: unique per assertion (not per request: the gateway reuses an assertion for up to ~30 s). */
  id: string
}

/**
 * Why an assertion was refused:
 * - `missing`: no X-Identity-Assertion header;
 * - `malformed`: repeated, not a compact JWS, another `alg` than ES256 (`none` and HS256 included),
 *   no `kid`, critical extensions, a `typ` other than JWT, or identity claims missing or of the wrong type;
 * - `unknown-key`: no usable published key has that `kid` (or the JWKS could not be fetched and no
 *   key was known);
 * - `bad-signature`: the signature does not verify with that key;
 * - `expired`: `exp` is past, or `iat`/`nbf` is in the future, beyond the clock tolerance;
 * - `wrong-issuer`: `iss` is not the expected gateway;
 * - `wrong-audience`: `aud` does not name this application.
 */
export type AssertionFailure = 'missing' | 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'wrong-issuer' | 'wrong-audience'

/** What {@link verifyIdentityAssertion} returns: never throws for a bad token. */
export type AssertionResult =
  | { ok: true, assertion: VerifiedAssertion }
  | { ok: false, reason: AssertionFailure, message: string }

/** The expectations an assertion must meet, besides its signature. */
export interface AssertionOptions {
  /** The gateway's PUBLIC_URL origin (`iss`), e.g. https://tt.example.com */
  issuer: string
  /** IDENTITY_JWT_AUDIENCE, by default the upstream's own origin (`aud`). */
  audience: string
  /** Accepted clock difference in seconds (default 60, as for X-Auth-Timestamp). */
  maxSkewSeconds?: number
  /** Current Unix time in seconds (tests). */
  now?: number
}

/** A public key that verifies ES256 signatures: a Web Crypto CryptoKey or a Node.js KeyObject. */
export type VerificationKey = CryptoKey | KeyObject

/**
 * Finds the public key for a `kid`: {@link staticJwks} (a JWKS you hold), {@link RemoteJwks} (the
 * gateway's, fetched), or your own. Return undefined for a kid you do not know; the assertion is
 * then refused as `unknown-key`.
 *
 * @example
 * ```ts
 * const keys: KeySource = { key: (kid) => kid === 'my-kid' ? myPublicKey : undefined }
 * ```
 */
export interface KeySource { key: (kid: string) => Promise<VerificationKey | undefined> | VerificationKey | undefined }

// Far above the gateway's own assertions (well under 2 KB), so nothing huge is ever parsed.
const MAX_TOKEN_LENGTH = 8192
// Strict base64url, as the gateway writes it: no padding, no whitespace, no other alphabet.
const B64URL = /^[A-Za-z0-9_-]+$/

/** The public members of an ES256 JWK, or undefined for anything else (other types, curves, uses). */
function es256PublicMembers (jwk: unknown): JWK | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined
  const k = jwk as Record<string, unknown>
  if (k.kty !== 'EC' || k.crv !== 'P-256' || typeof k.x !== 'string' || typeof k.y !== 'string') return undefined
  if ((k.alg !== undefined && k.alg !== 'ES256') || (k.use !== undefined && k.use !== 'sig')) return undefined
  // Only the public members: a JWK that also holds `d` must not become a private key here.
  return { kty: 'EC', crv: 'P-256', x: k.x, y: k.y }
}

/**
 * Imports one public ES256 key from a JWK (for a {@link KeySource} of your own).
 *
 * @param jwk - A JWK object, e.g. one entry of the gateway's `/_authgate/jwks.json`.
 * @returns The key, or undefined when the JWK is not an EC P-256 public key meant for ES256
 *   signatures (`alg`, `use` if present) or its coordinates are not a point on the curve.
 *   Private members (`d`) are ignored.
 *
 * @example
 * ```ts
 * const key = await importJwk({ kty: 'EC', crv: 'P-256', x: '…', y: '…' })
 * if (key === undefined) throw new Error('not an ES256 public key')
 * ```
 */
export async function importJwk (jwk: unknown): Promise<CryptoKey | undefined> {
  const members = es256PublicMembers(jwk)
  if (members === undefined) return undefined
  try {
    return await importJWK(members, 'ES256') as CryptoKey
  } catch {
    return undefined
  }
}

type KeySet = ReturnType<typeof createLocalJWKSet>

/** jose's key set of the usable keys of a JWKS document: objects with a kid, nothing else. */
function localKeySet (jwks: { keys?: unknown }): KeySet {
  const keys = Array.isArray(jwks.keys)
    ? jwks.keys.filter((k): k is JWK => typeof k === 'object' && k !== null && !Array.isArray(k) && typeof (k as JWK).kid === 'string')
    : []
  return createLocalJWKSet({ keys })
}

/**
 * The ES256 key with this kid in a jose key set, or undefined: none (or several) match, or the one
 * that matches cannot be imported. jose selects by kid, key type, curve, `alg`, `use` and `key_ops`.
 */
async function keyIn (set: KeySet, kid: string): Promise<CryptoKey | undefined> {
  try {
    return await set({ alg: 'ES256', kid })
  } catch {
    return undefined
  }
}

/**
 * A fixed key set, e.g. the parsed JSON of the gateway's `/_authgate/jwks.json` kept in your
 * configuration. Keys without a `kid`, and keys that are not EC P-256 for ES256, are never used.
 *
 * @param jwks - A JWKS document: `{ keys: [...] }` (anything else is an empty set).
 * @returns A {@link KeySource} for {@link verifyIdentityAssertion} or the `assertion.jwks` option.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * const keys = staticJwks(JSON.parse(readFileSync('authgate-jwks.json', 'utf8')))
 * const result = await verifyIdentityAssertion(req.headers['x-identity-assertion'], keys, { issuer, audience })
 * ```
 */
export function staticJwks (jwks: { keys?: unknown }): KeySource {
  const set = localKeySet(jwks)
  return { key: async (kid) => await keyIn(set, kid) }
}

/** Thrown inside jwtVerify's key lookup, so each refusal keeps its own reason. */
class HeaderRefused extends errors.JWSInvalid {}

async function keyFor (header: JWTHeaderParameters, keys: KeySource): Promise<VerificationKey> {
  // jose has already refused any alg but ES256 and any critical extension it does not implement.
  if (typeof header.kid !== 'string' || header.kid === '') throw new HeaderRefused('kid missing')
  if (header.typ !== undefined && header.typ !== 'JWT') throw new HeaderRefused('unexpected typ')
  const key = await keys.key(header.kid)
  if (key === undefined) throw new errors.JWKSNoMatchingKey(`no published key with kid ${header.kid}`)
  return key
}

/** jose's error as a reason; anything that is not jose's (a KeySource that threw) is the caller's. */
function refusal (err: unknown): { ok: false, reason: AssertionFailure, message: string } {
  const fail = (reason: AssertionFailure, message: string): { ok: false, reason: AssertionFailure, message: string } => ({ ok: false, reason, message })
  if (err instanceof errors.JWKSNoMatchingKey) return fail('unknown-key', err.message)
  if (err instanceof errors.JWSSignatureVerificationFailed) return fail('bad-signature', 'signature does not verify')
  if (err instanceof errors.JWTExpired) return fail('expired', 'assertion has expired')
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return fail('wrong-issuer', 'iss is not the expected gateway')
    if (err.claim === 'aud') return fail('wrong-audience', 'aud is not this application')
    if (err.claim === 'nbf' && err.reason === 'check_failed') return fail('expired', 'assertion is not valid yet (clock skew)')
    return fail('malformed', err.message)
  }
  // Not a compact JWS, alg other than ES256, crit, header or payload not JSON, and the like.
  if (err instanceof errors.JOSEError) return fail('malformed', err.message)
  throw err
}

const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'
const isSeconds = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

/**
 * Verifies the gateway's X-Identity-Assertion (sent with IDENTITY_JWT=true): an ES256 JWT whose
 * signature must verify with a key from `keys`, whose `iss` and `aud` must be the expected ones, and
 * whose `exp` (and `iat`, `nbf`) must hold within `maxSkewSeconds`. Only ES256 is accepted.
 *
 * @param token - The header's value as your framework gives it (`req.headers['x-identity-assertion']`);
 *   undefined, null or '' is `missing`, an array (the header repeated) is `malformed`.
 * @param keys - Where the public keys come from: {@link RemoteJwks}, {@link staticJwks}, or your own {@link KeySource}.
 * @param options - The expected `issuer` and `audience`; the clock tolerance.
 * @returns `{ ok: true, assertion }`, or `{ ok: false, reason, message }` with one of the
 *   {@link AssertionFailure} reasons. A bad token never throws; only an exception from your own
 *   KeySource (or a key of the wrong type from it) is passed on.
 *
 * @example
 * ```ts
 * const keys = new RemoteJwks('http://127.0.0.1:8080/_authgate/jwks.json') // create once, reuse
 * const result = await verifyIdentityAssertion(req.headers['x-identity-assertion'], keys, {
 *   issuer: 'https://tt.example.com', audience: 'http://127.0.0.1:5000'
 * })
 * if (!result.ok) return res.status(401).end(result.reason)
 * console.log(result.assertion.username, result.assertion.subject)
 * ```
 */
export async function verifyIdentityAssertion (token: string | string[] | undefined | null, keys: KeySource, options: AssertionOptions): Promise<AssertionResult> {
  if (token === undefined || token === null || token === '') return { ok: false, reason: 'missing', message: 'no X-Identity-Assertion' }
  if (typeof token !== 'string') return { ok: false, reason: 'malformed', message: 'X-Identity-Assertion repeated' }
  const parts = token.split('.')
  if (token.length > MAX_TOKEN_LENGTH || parts.length !== 3 || !parts.every((p) => B64URL.test(p))) {
    return { ok: false, reason: 'malformed', message: 'not a compact JWS' }
  }
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const skew = options.maxSkewSeconds ?? 60
  let c: JWTPayload
  try {
    const verified = await jwtVerify(token, async (header) => await keyFor(header, keys), {
      algorithms: ['ES256'],
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ['iat', 'exp'],
      clockTolerance: skew,
      currentDate: new Date(now * 1000)
    })
    c = verified.payload
  } catch (err) {
    return refusal(err)
  }
  if (!isSeconds(c.iat) || !isSeconds(c.exp)) return { ok: false, reason: 'malformed', message: 'iat and exp must be Unix times' }
  // jose checks iat only against a maximum age; an assertion from the future is refused here.
  if (c.iat > now + skew) return { ok: false, reason: 'expired', message: 'assertion is issued in the future (clock skew)' }
  if (typeof c.sub !== 'string' || c.sub === '' || typeof c.preferred_username !== 'string' || c.preferred_username === '' ||
    typeof c.admin !== 'boolean' || !isNullableString(c.email) || !isNullableString(c.name) ||
    !Array.isArray(c.groups) || !c.groups.every((g) => typeof g === 'string') || typeof c.jti !== 'string') {
    return { ok: false, reason: 'malformed', message: 'identity claims are missing or of the wrong type' }
  }
  return {
    ok: true,
    assertion: {
      username: c.preferred_username,
      isAdmin: c.admin,
      email: c.email,
      fullName: c.name,
      groups: c.groups as string[],
      subject: c.sub,
      issuedAt: c.iat,
      expiresAt: c.exp,
      id: c.jti
    }
  }
}

/** How {@link RemoteJwks} fetches and keeps the gateway's keys. */
export interface RemoteJwksOptions {
  /** Keys are refetched after this many seconds (default 300, the gateway's Cache-Control). */
  cacheSeconds?: number
  /**
   * The gateway is asked at most this often (default 30): for a kid not yet known (so a rotation
   * is picked up at once), and again after a failed fetch.
   */
  cooldownSeconds?: number
  /** Per fetch, in milliseconds (default 5000). */
  timeoutMs?: number
  /** A fetch implementation of your own (default: the global fetch). Redirects are not followed. */
  fetch?: typeof globalThis.fetch
}

/**
 * The gateway's `/_authgate/jwks.json`, fetched on first use and kept (jose's `createRemoteJWKSet`).
 * A failed fetch keeps the keys already known (availability) and is not retried within the
 * cooldown (so an unreachable gateway is not asked on every request); with no key known, every
 * assertion is refused as `unknown-key`. Create it once and share it: it holds the cache.
 *
 * @example
 * ```ts
 * const keys = new RemoteJwks('http://127.0.0.1:8080/_authgate/jwks.json', { cacheSeconds: 300 })
 * const result = await verifyIdentityAssertion(token, keys, { issuer, audience })
 * ```
 */
export class RemoteJwks implements KeySource {
  /** Where the keys come from. */
  readonly url: URL
  private readonly remote: ReturnType<typeof createRemoteJWKSet>
  private readonly cooldownMs: number
  /** jose writes every successfully fetched document here: the fallback while the gateway is unreachable. */
  private readonly fetched: { jwks?: JSONWebKeySet, uat?: number } = {}
  private fallback: { jwks: JSONWebKeySet, set: KeySet } | undefined
  private failedAt = -Infinity

  /**
   * @param url - The gateway's JWKS URL, e.g. `http://127.0.0.1:8080/_authgate/jwks.json` (an
   *   address the upstream reaches the gateway on; it does not have to be PUBLIC_URL).
   * @param options - Cache time, cooldown, timeout, fetch.
   * @throws TypeError when `url` is not a URL, or an option is negative or not a number.
   */
  constructor (url: string | URL, options: RemoteJwksOptions = {}) {
    this.url = new URL(url)
    this.cooldownMs = (options.cooldownSeconds ?? 30) * 1000
    this.remote = createRemoteJWKSet(this.url, {
      cacheMaxAge: (options.cacheSeconds ?? 300) * 1000,
      cooldownDuration: this.cooldownMs,
      timeoutDuration: options.timeoutMs ?? 5000,
      headers: { accept: 'application/jwk-set+json, application/json' },
      [jwksCache]: this.fetched as Record<string, never>,
      ...(options.fetch !== undefined ? { [customFetch]: options.fetch } : {})
    })
  }

  /**
   * The key with this kid, fetching the JWKS when it is older than `cacheSeconds`, or when the kid
   * is unknown and the last fetch is older than `cooldownSeconds`.
   *
   * @param kid - The `kid` of the assertion's header.
   * @returns The key, or undefined when the gateway publishes none with that kid (or cannot be
   *   reached and did not before). Never throws.
   */
  async key (kid: string): Promise<CryptoKey | undefined> {
    if (Date.now() - this.failedAt >= this.cooldownMs) {
      try {
        return await this.remote({ alg: 'ES256', kid })
      } catch (err) {
        // Fetched fine, but no (single) key with that kid: nothing more to try.
        if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return undefined
        // Unreachable, timed out, not 200, not a JWKS: use what is known, ask again after the cooldown.
        this.failedAt = Date.now()
      }
    }
    const known = this.fetched.jwks
    if (known === undefined) return undefined
    if (this.fallback?.jwks !== known) this.fallback = { jwks: known, set: localKeySet(known) }
    return await keyIn(this.fallback.set, kid)
  }
}
