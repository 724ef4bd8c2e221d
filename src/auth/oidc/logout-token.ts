// Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4–2.6): a JWT the IdP posts
// to say that one of its sessions (or every session of a subject) ended. Anyone can post to the
// route, so everything is checked before anything ends: the IdP's signature (its published keys,
// asymmetric algorithms only: no `none`, no HMAC keyed with a secret others may know), issuer,
// audience, a recent `iat`, a `jti`, the back-channel event, `sub` and/or `sid`, and no `nonce`
// (which would make an ID token pass for a logout token). Whether the jti was used before is the
// database's to say (src/db/sessions.ts), across replicas.
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { CLOCK_SKEW_SECONDS } from '../../session/session.js'

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token older than this (by its `iat`, beyond clock skew) is refused. */
export const LOGOUT_TOKEN_MAX_AGE_SECONDS = 10 * 60
/** Signature algorithms a logout token may use: public-key ones only. */
const ASYMMETRIC = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'])

export interface LogoutTokenContext {
  /** The issuer as discovered (exactly the `iss` the IdP puts in its tokens). */
  issuer: string
  clientId: string
  /** The IdP's keys (see remoteKeys). */
  keys: JWTVerifyGetKey
  /** The IdP's advertised ID token algorithms (id_token_signing_alg_values_supported), if any. */
  advertisedAlgorithms: string[] | undefined
  now: Date
}

/** A valid logout token: what it ends, and its id (kept until `expiresAt`, ms since the epoch). */
export interface LogoutToken {
  issuer: string
  jti: string
  sub: string | undefined
  sid: string | undefined
  expiresAt: number
}

export type LogoutTokenCheck = { ok: true, token: LogoutToken } | { ok: false, reason: string }

/**
 * The IdP's JWKS, fetched when needed and cached by jose (an unknown `kid` refetches, at most every
 * 30 s). A fetch that takes longer than `timeoutMs` (the provider's OIDC_TIMEOUT) is abandoned and the
 * token refused: the IdP may send it again.
 */
export function remoteKeys (jwksUri: string, timeoutMs: number): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 })
}

/** The algorithms accepted: the IdP's advertised asymmetric ones, else RS256 (the ID token default). */
export function acceptedAlgorithms (advertised: string[] | undefined): string[] {
  const usable = (advertised ?? []).filter((alg) => ASYMMETRIC.has(alg))
  return usable.length > 0 ? usable : ['RS256']
}

const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v !== '' && v.length <= 1024

/** Every check of §2.6 but the jti's novelty; the reason of a refusal is for the log (it holds no token). */
export async function checkLogoutToken (jwt: string, context: LogoutTokenContext): Promise<LogoutTokenCheck> {
  let payload: Record<string, unknown>
  try {
    const verified = await jwtVerify(jwt, context.keys, {
      issuer: context.issuer,
      audience: context.clientId,
      algorithms: acceptedAlgorithms(context.advertisedAlgorithms),
      requiredClaims: ['iat', 'jti'],
      maxTokenAge: LOGOUT_TOKEN_MAX_AGE_SECONDS,
      clockTolerance: CLOCK_SKEW_SECONDS,
      currentDate: context.now
    })
    payload = verified.payload as Record<string, unknown>
  } catch (err) {
    return { ok: false, reason: describeJoseError(err) }
  }
  const events = payload.events
  if (typeof events !== 'object' || events === null || Array.isArray(events)) return { ok: false, reason: 'no events claim' }
  const event = (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT]
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return { ok: false, reason: 'events lacks the back-channel logout event' }
  if ('nonce' in payload) return { ok: false, reason: 'a nonce is present (an ID token, not a logout token)' }
  const { sub, sid, jti, iat } = payload
  if (sub !== undefined && !nonEmptyString(sub)) return { ok: false, reason: 'malformed sub' }
  if (sid !== undefined && !nonEmptyString(sid)) return { ok: false, reason: 'malformed sid' }
  if (sub === undefined && sid === undefined) return { ok: false, reason: 'neither sub nor sid' }
  if (!nonEmptyString(jti)) return { ok: false, reason: 'malformed jti' }
  // Past this instant the token is refused as stale anyway: its id need not be kept longer.
  const expiresAt = ((iat as number) + LOGOUT_TOKEN_MAX_AGE_SECONDS + CLOCK_SKEW_SECONDS) * 1000
  return { ok: true, token: { issuer: context.issuer, jti, sub, sid, expiresAt } }
}

function describeJoseError (err: unknown): string {
  if (err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTExpired) return `claim ${err.claim}: ${err.reason} (${err.message})`
  if (err instanceof errors.JOSEError) return `${err.code}: ${err.message}`
  return `verification failed: ${(err as Error).message}`
}
