// Verifying X-Identity-Assertion (IDENTITY_JWT): an ES256 compact JWS checked against the gateway's
// published keys. Deliberately narrow: one algorithm, one key type, every claim checked explicitly,
// so there is no algorithm confusion and no "none". node:crypto only, no server code.
import { createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto'

export interface VerifiedAssertion {
  username: string
  isAdmin: boolean
  email: string | null
  fullName: string | null
  groups: string[]
  /** `sub`: the gateway's stable user id (survives a username change). */
  subject: string
  issuedAt: number
  expiresAt: number
  /** `jti`: unique per assertion. */
  id: string
}

export type AssertionFailure = 'missing' | 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'wrong-issuer' | 'wrong-audience'

export type AssertionResult =
  | { ok: true, assertion: VerifiedAssertion }
  | { ok: false, reason: AssertionFailure, message: string }

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

/** Finds the public key for a `kid`: a JWKS you hold, or a RemoteJwks that fetches the gateway's. */
export interface KeySource { key: (kid: string) => Promise<KeyObject | undefined> | KeyObject | undefined }

const MAX_TOKEN_LENGTH = 8192
const B64URL = /^[A-Za-z0-9_-]+$/

/** A public ES256 key from a JWK, or undefined for anything else (other types, curves, uses). */
export function importJwk (jwk: unknown): KeyObject | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined
  const k = jwk as Record<string, unknown>
  if (k.kty !== 'EC' || k.crv !== 'P-256' || typeof k.x !== 'string' || typeof k.y !== 'string') return undefined
  if ((k.alg !== undefined && k.alg !== 'ES256') || (k.use !== undefined && k.use !== 'sig')) return undefined
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: k.x, y: k.y } as JsonWebKey, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** A fixed key set, e.g. the parsed JSON of /_authgate/jwks.json. Keys without a kid are ignored. */
export function staticJwks (jwks: { keys?: unknown }): KeySource {
  const keys = new Map<string, KeyObject>()
  for (const jwk of Array.isArray(jwks.keys) ? jwks.keys : []) {
    const kid = (jwk as { kid?: unknown }).kid
    const key = importJwk(jwk)
    if (typeof kid === 'string' && key !== undefined) keys.set(kid, key)
  }
  return { key: (kid) => keys.get(kid) }
}

function decodeJson (part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'
const isSeconds = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

export async function verifyIdentityAssertion (token: string | string[] | undefined | null, keys: KeySource, options: AssertionOptions): Promise<AssertionResult> {
  const fail = (reason: AssertionFailure, message: string): AssertionResult => ({ ok: false, reason, message })
  if (token === undefined || token === null || token === '') return fail('missing', 'no X-Identity-Assertion')
  if (typeof token !== 'string') return fail('malformed', 'X-Identity-Assertion repeated')
  const parts = token.split('.')
  if (token.length > MAX_TOKEN_LENGTH || parts.length !== 3 || !parts.every((p) => B64URL.test(p))) {
    return fail('malformed', 'not a compact JWS')
  }
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string]
  const header = decodeJson(headerPart)
  if (header === undefined) return fail('malformed', 'JWS header is not JSON')
  // Only what the gateway produces: ES256, a kid, no critical extensions.
  if (header.alg !== 'ES256') return fail('malformed', 'alg must be ES256')
  if (typeof header.kid !== 'string' || header.kid === '') return fail('malformed', 'kid missing')
  if (header.crit !== undefined || (header.typ !== undefined && header.typ !== 'JWT')) return fail('malformed', 'unexpected JWS header')

  const key = await keys.key(header.kid)
  if (key === undefined) return fail('unknown-key', `no published key with kid ${header.kid}`)
  const signature = Buffer.from(signaturePart, 'base64url')
  if (signature.length !== 64) return fail('bad-signature', 'ES256 signature must be 64 bytes')
  const valid = verify('sha256', Buffer.from(`${headerPart}.${payloadPart}`), { key, dsaEncoding: 'ieee-p1363' }, signature)
  if (!valid) return fail('bad-signature', 'signature does not verify')

  const c = decodeJson(payloadPart)
  if (c === undefined) return fail('malformed', 'JWS payload is not JSON')
  if (c.iss !== options.issuer) return fail('wrong-issuer', 'iss is not the expected gateway')
  const audiences = Array.isArray(c.aud) ? c.aud : [c.aud]
  if (!audiences.includes(options.audience)) return fail('wrong-audience', 'aud is not this application')
  if (!isSeconds(c.iat) || !isSeconds(c.exp)) return fail('malformed', 'iat and exp must be Unix times')
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const skew = options.maxSkewSeconds ?? 60
  if (now > c.exp + skew) return fail('expired', 'assertion has expired')
  if (c.iat > now + skew) return fail('expired', 'assertion is issued in the future (clock skew)')
  if (typeof c.sub !== 'string' || c.sub === '' || typeof c.preferred_username !== 'string' || c.preferred_username === '' ||
    typeof c.admin !== 'boolean' || !isNullableString(c.email) || !isNullableString(c.name) ||
    !Array.isArray(c.groups) || !c.groups.every((g) => typeof g === 'string') || typeof c.jti !== 'string') {
    return fail('malformed', 'identity claims are missing or of the wrong type')
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

export interface RemoteJwksOptions {
  /** Keys are refetched after this many seconds (default 300, the gateway's Cache-Control). */
  cacheSeconds?: number
  /** An unknown kid triggers a refetch at most this often (default 30): a rotation is picked up at once. */
  cooldownSeconds?: number
  /** Per fetch (default 5000). */
  timeoutMs?: number
  fetch?: typeof globalThis.fetch
}

/**
 * The gateway's /_authgate/jwks.json, fetched on first use and kept. A failed refresh keeps the
 * keys already known (availability); with none known, every assertion fails as 'unknown-key'.
 */
export class RemoteJwks implements KeySource {
  private keys: KeySource = staticJwks({})
  private fetchedAt = -Infinity
  private inflight: Promise<void> | undefined

  constructor (readonly url: string | URL, private readonly options: RemoteJwksOptions = {}) {}

  async key (kid: string): Promise<KeyObject | undefined> {
    const age = (): number => (Date.now() - this.fetchedAt) / 1000
    if (age() > (this.options.cacheSeconds ?? 300)) await this.refresh()
    let key = await this.keys.key(kid)
    if (key === undefined && age() > (this.options.cooldownSeconds ?? 30)) {
      await this.refresh()
      key = await this.keys.key(kid)
    }
    return key
  }

  private async refresh (): Promise<void> {
    this.inflight ??= (async () => {
      try {
        const response = await (this.options.fetch ?? globalThis.fetch)(this.url, {
          headers: { accept: 'application/jwk-set+json, application/json' },
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000)
        })
        if (response.ok) {
          const body = await response.json() as { keys?: unknown }
          this.keys = staticJwks(body)
        }
      } catch {
        // Unreachable gateway or bad JSON: keep what we had (see the class comment).
      } finally {
        // Also after a failure, so an unreachable gateway is not asked again on every request.
        this.fetchedAt = Date.now()
        this.inflight = undefined
      }
    })()
    await this.inflight
  }
}
