// The optional identity assertion (IDENTITY_JWT): a compact JWS signed with ES256 over the same
// identity as the HMAC headers, verifiable by anyone holding the published public keys (JWKS).
// node:crypto only: signing keys never leave this process and no JOSE library is needed to sign.
import { createHash, createPublicKey, randomUUID, sign, type KeyObject } from 'node:crypto'
import type { Identity } from './headers.js'

/** Lifetime of one assertion (seconds): short, like Pomerium's, IAP's and Cloudflare Access's. */
export const ASSERTION_LIFETIME = 60
/** A cached assertion is re-signed once it has less than this many seconds left. */
export const ASSERTION_RENEW_BEFORE = 30

export interface EcPublicJwk { kty: 'EC', crv: 'P-256', x: string, y: string }
export interface PublishedJwk extends EcPublicJwk { kid: string, alg: 'ES256', use: 'sig' }

export interface AssertionClaims {
  iss: string
  aud: string
  sub: string
  preferred_username: string
  email: string | null
  name: string | null
  groups: string[]
  admin: boolean
  iat: number
  exp: number
  jti: string
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url')

/** The public half of an ES256 key as a bare JWK (members in RFC 7638 order). */
export function publicJwk (key: KeyObject): EcPublicJwk {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' })
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error('not an EC P-256 key')
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }
}

/** RFC 7638 thumbprint: a `kid` derived from the key itself, so it never needs configuring. */
export function jwkThumbprint (jwk: EcPublicJwk): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
  return createHash('sha256').update(canonical).digest('base64url')
}

export function publishedJwk (key: KeyObject): PublishedJwk {
  const jwk = publicJwk(key)
  return { ...jwk, kid: jwkThumbprint(jwk), alg: 'ES256', use: 'sig' }
}

/** The JWKS document: the current key first, then previous ones still valid for verification. */
export function jwksDocument (current: KeyObject, previous: readonly KeyObject[]): { keys: PublishedJwk[] } {
  const keys = [current, ...previous].map(publishedJwk)
  // The same key listed twice (current also given as previous) is published once.
  return { keys: keys.filter((k, i) => keys.findIndex((o) => o.kid === k.kid) === i) }
}

export interface ClaimContext {
  issuer: string
  audience: string
  /** Stable subject: the gateway's user id. */
  subject: string
  now: number
  /** The session's absolute expiry: an assertion never outlives its session. */
  sessionExpiry: number
  jti?: string
}

export function assertionClaims (identity: Identity, ctx: ClaimContext): AssertionClaims {
  return {
    iss: ctx.issuer,
    aud: ctx.audience,
    sub: ctx.subject,
    preferred_username: identity.username,
    email: identity.email,
    name: identity.fullName,
    groups: identity.groups,
    admin: identity.isAdmin,
    iat: ctx.now,
    exp: Math.min(ctx.now + ASSERTION_LIFETIME, ctx.sessionExpiry),
    jti: ctx.jti ?? randomUUID()
  }
}

/** Compact JWS, ES256 (R||S signature as JWS requires, hence dsaEncoding ieee-p1363). */
export function signJwt (claims: object, privateKey: KeyObject, kid: string): string {
  const input = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid })) + '.' + b64url(JSON.stringify(claims))
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
  return input + '.' + b64url(signature)
}

export interface AssertionSettings {
  privateKey: KeyObject
  issuer: string
  audience: string
  /** Most sessions remembered at once; the oldest entry is dropped beyond it. */
  maxEntries?: number
}

/**
 * Signs assertions for sessions, at most once per ASSERTION_RENEW_BEFORE seconds per session: a
 * busy session costs a map lookup per request, not an ECDSA signature. Bounded, oldest-first eviction.
 */
export class AssertionSigner {
  readonly kid: string
  private readonly cache = new Map<string, { token: string, renewAt: number }>()
  private readonly maxEntries: number

  constructor (private readonly settings: AssertionSettings) {
    this.kid = jwkThumbprint(publicJwk(settings.privateKey))
    this.maxEntries = settings.maxEntries ?? 10_000
  }

  /**
   * `sessionKey` identifies the session (user id, issue time); the identity is part of the cache
   * key too, so two sessions that differ in any claim never share a token.
   */
  assertionFor (identity: Identity, session: { uid: number, iat: number, exp: number }, now: number = Math.floor(Date.now() / 1000)): string {
    const key = JSON.stringify([session.uid, session.iat, session.exp, identity.username, identity.isAdmin, identity.email, identity.fullName, identity.groups])
    const cached = this.cache.get(key)
    if (cached !== undefined && now < cached.renewAt) return cached.token
    const claims = assertionClaims(identity, {
      issuer: this.settings.issuer,
      audience: this.settings.audience,
      subject: String(session.uid),
      now,
      sessionExpiry: session.exp
    })
    const token = signJwt(claims, this.settings.privateKey, this.kid)
    this.cache.delete(key)
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(key, { token, renewAt: Math.min(now + ASSERTION_LIFETIME - ASSERTION_RENEW_BEFORE, claims.exp) })
    return token
  }

  get size (): number {
    return this.cache.size
  }
}
