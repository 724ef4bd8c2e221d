// The optional identity assertion (IDENTITY_JWT): a compact JWS signed with ES256 over the same
// identity as the HMAC headers, verifiable by anyone holding the published public keys (JWKS).
// jose signs and derives the key ids, the same library @authgate/verify checks them with; the
// signing key never leaves this process.
import { createPublicKey, randomUUID, type KeyObject } from 'node:crypto'
import { calculateJwkThumbprint, exportJWK, SignJWT, type JWTPayload } from 'jose'
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

/** The public half of an ES256 key as a bare JWK (members in RFC 7638 order). */
export async function publicJwk (key: KeyObject): Promise<EcPublicJwk> {
  // Exported from the public half only: a private key's JWK would carry `d`.
  const jwk = await exportJWK(key.type === 'private' ? createPublicKey(key) : key)
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error('not an EC P-256 key')
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }
}

/** RFC 7638 thumbprint: a `kid` derived from the key itself, so it never needs configuring. */
export async function jwkThumbprint (jwk: EcPublicJwk): Promise<string> {
  return await calculateJwkThumbprint(jwk, 'sha256')
}

/** The JWKS entry for a key: its public members, its thumbprint as `kid`, ES256 signatures only. */
export async function publishedJwk (key: KeyObject): Promise<PublishedJwk> {
  const jwk = await publicJwk(key)
  return { ...jwk, kid: await jwkThumbprint(jwk), alg: 'ES256', use: 'sig' }
}

/** The JWKS document: the current key first, then previous ones still valid for verification. */
export async function jwksDocument (current: KeyObject, previous: readonly KeyObject[]): Promise<{ keys: PublishedJwk[] }> {
  const keys = await Promise.all([current, ...previous].map(publishedJwk))
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

/**
 * Compact JWS, ES256, header `{"alg":"ES256","typ":"JWT","kid":…}`. The claims are signed as given
 * (no claim is added or reordered): the caller sets iat, exp and the rest.
 */
export async function signJwt (claims: object, privateKey: KeyObject, kid: string): Promise<string> {
  return await new SignJWT(claims as JWTPayload).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).sign(privateKey)
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
  private readonly cache = new Map<string, { token: string, renewAt: number }>()
  private readonly maxEntries: number

  /** Use AssertionSigner.create: the kid (the key's thumbprint) is computed asynchronously. */
  private constructor (private readonly settings: AssertionSettings, readonly kid: string) {
    this.maxEntries = settings.maxEntries ?? 10_000
  }

  static async create (settings: AssertionSettings): Promise<AssertionSigner> {
    return new AssertionSigner(settings, await jwkThumbprint(await publicJwk(settings.privateKey)))
  }

  /**
   * `sessionKey` identifies the session (user id, issue time); the identity is part of the cache
   * key too, so two sessions that differ in any claim never share a token.
   */
  async assertionFor (identity: Identity, session: { uid: number, iat: number, exp: number }, now: number = Math.floor(Date.now() / 1000)): Promise<string> {
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
    // Two requests of one session may both sign here at once: both tokens are valid, the later is kept.
    const token = await signJwt(claims, this.settings.privateKey, this.kid)
    this.cache.delete(key)
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(key, { token, renewAt: Math.min(now + ASSERTION_LIFETIME - ASSERTION_RENEW_BEFORE, claims.exp) })
    return token
  }

  get size (): number {
    return this.cache.size
  }
}
