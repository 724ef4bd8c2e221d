// The signed-in session: what the encrypted cookie holds, and the rules that decide whether a
// decrypted cookie is still a session. Anything unexpected reads as "not signed in".
import { randomBytes } from 'node:crypto'
import type { Identity } from '../identity/headers.js'
import type { Subject } from '../policy/access-rules.js'
import { PROVIDER_ID } from '../config/oidc.js'

export type LoginMethod = 'local' | 'oidc'
/** The second factor a local sign-in passed (LOCAL_MFA): an authenticator code, a recovery code, a passkey. */
export type SecondFactorKind = 'totp' | 'recovery' | 'passkey'
const SECOND_FACTORS: readonly unknown[] = ['totp', 'recovery', 'passkey']

/** Cookie payload (short keys: it travels with every request and must stay far below 4 KB). */
export interface SessionPayload {
  /** 2: with a session id (version 1 cookies, from before server-side sessions, are refused) */
  v: 2
  /** session id: the server-side record (src/db/sessions.ts), ended by logout */
  sid: string
  /** user id */
  uid: number
  u: string
  a: boolean
  e: string | null
  n: string | null
  g: string[]
  /** issued at / absolute expiry, Unix seconds */
  iat: number
  exp: number
  m: LoginMethod
  /** OIDC: the ID token, when small enough to keep, for RP-initiated logout's id_token_hint */
  idt?: string
  /** OIDC with OIDC_PROVIDERS: the id of the provider that signed the user in (absent: the first, or only, one) */
  p?: string
  /** OIDC: whether the provider verified the email (email_verified); ACCESS_RULES' email-domain counts only then */
  ev?: boolean
  /** Local sign-ins: the second factor passed (absent: none was asked for). */
  f?: SecondFactorKind
  /**
   * LOCAL_MFA=required, a user without a second factor: signed in only to enrol one. Such a session
   * gets the account page and nothing from the upstream (src/auth/mfa/gate.ts).
   */
  pe?: true
  /**
   * Never in the cookie: the version of the identity a re-validation laid over the cookie's
   * (src/session/identities.ts); absent: the sign-in's.
   */
  iv?: number
}

export interface SessionUser {
  id: number
  username: string
  isAdmin: boolean
  email: string | null
  fullName: string | null
  groups?: string[]
  /** OIDC: the provider's email_verified (only true counts); local accounts' emails are the operator's. */
  emailVerified?: boolean
}

/** Clocks of the gateway's instances are assumed to agree within this many seconds. */
export const CLOCK_SKEW_SECONDS = 60

/** 128 random bits, base64url: unguessable, and short (it travels in every request's cookie). */
export function newSessionId (): string {
  return randomBytes(16).toString('base64url')
}

const SESSION_ID = /^[\w-]{22}$/

export function newSessionPayload (sessionId: string, user: SessionUser, method: LoginMethod, maxAge: number, now: number, extra: { idToken?: string, provider?: string, secondFactor?: SecondFactorKind, enrolmentPending?: boolean } = {}): SessionPayload {
  return {
    v: 2,
    sid: sessionId,
    uid: user.id,
    u: user.username,
    a: user.isAdmin,
    e: user.email,
    n: user.fullName,
    g: user.groups ?? [],
    iat: now,
    exp: now + maxAge,
    m: method,
    ...(extra.idToken !== undefined ? { idt: extra.idToken } : {}),
    ...(method === 'oidc' && extra.provider !== undefined ? { p: extra.provider } : {}),
    ...(method === 'oidc' ? { ev: user.emailVerified === true } : {}),
    ...(method === 'local' && extra.secondFactor !== undefined ? { f: extra.secondFactor } : {}),
    ...(method === 'local' && extra.enrolmentPending === true ? { pe: true as const } : {})
  }
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'
const isSeconds = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

/** Narrow a decrypted value to a payload; a payload of another shape or version is rejected. */
export function parseSessionPayload (value: unknown): SessionPayload | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const p = value as Record<string, unknown>
  if (p.v !== 2 || typeof p.sid !== 'string' || !SESSION_ID.test(p.sid) || !isSeconds(p.uid) || !isString(p.u) || p.u === '' || typeof p.a !== 'boolean' ||
    !isNullableString(p.e) || !isNullableString(p.n) || !Array.isArray(p.g) || !p.g.every(isString) ||
    !isSeconds(p.iat) || !isSeconds(p.exp) || (p.m !== 'local' && p.m !== 'oidc') ||
    (p.idt !== undefined && !isString(p.idt)) || (p.p !== undefined && (!isString(p.p) || !PROVIDER_ID.test(p.p))) || (p.ev !== undefined && typeof p.ev !== 'boolean') ||
    (p.f !== undefined && !SECOND_FACTORS.includes(p.f)) || (p.pe !== undefined && p.pe !== true)) {
    return undefined
  }
  return p as unknown as SessionPayload
}

export interface SessionRevocation {
  /**
   * The user's cutoff: sessions issued in an earlier second are refused (Infinity: the user is
   * disabled). Those issued in its own second were ended by the revocation if they came before it.
   */
  revokedBefore: number | undefined
  /** This session was ended (logout). */
  ended: boolean
  /**
   * The ids of the SSO providers configured now (OIDC_PROVIDERS; empty without it). A session whose
   * provider is no longer among them is refused: removing a provider removes its people's access.
   */
  providers?: ReadonlySet<string>
}

/**
 * Why a session read from a cookie is refused. `unreadable` folds what @fastify/secure-session does
 * not tell apart: a cookie altered or forged, encrypted with a key no longer configured (or another
 * deployment's), or past the cookie's own expiry. `malformed`: it decrypted, but is not a current
 * payload (a version 1 cookie from before server-side sessions, say). `unverifiable`: nothing wrong
 * with the session that the gateway knows of, but its revocation list is older than
 * REVOCATION_MAX_STALENESS (the database is failing), so it cannot know: refused for now (503), not
 * ended (the same cookie works again once the list is refreshed).
 */
export type SessionRefusal = 'unreadable' | 'malformed' | 'expired' | 'issued-in-future' | 'too-long' | 'ended' | 'revoked' | 'disabled' | 'provider-removed' | 'unverifiable'

/**
 * Why a well-formed payload is not a session at `now` (undefined: it is one): expired, issued in the
 * future beyond clock skew, longer-lived than the configured maximum, ended, revoked (a disabled
 * user's cutoff is Infinity) since it was issued, or opened by an SSO provider no longer configured.
 */
export function sessionProblem (p: SessionPayload, now: number, maxAge: number, revocation: SessionRevocation): SessionRefusal | undefined {
  if (p.exp <= now) return 'expired'
  if (p.iat > now + CLOCK_SKEW_SECONDS) return 'issued-in-future'
  if (p.exp - p.iat > maxAge) return 'too-long'
  // The user's revocation first: it ends the session records too, and "revoked" says more than "ended".
  if (revocation.revokedBefore !== undefined && p.iat < revocation.revokedBefore) return revocation.revokedBefore === Number.POSITIVE_INFINITY ? 'disabled' : 'revoked'
  if (revocation.ended) return 'ended'
  if (p.p !== undefined && revocation.providers !== undefined && !revocation.providers.has(p.p)) return 'provider-removed'
  return undefined
}

export function isSessionCurrent (p: SessionPayload, now: number, maxAge: number, revocation: SessionRevocation): boolean {
  return sessionProblem(p, now, maxAge, revocation) === undefined
}

/**
 * Who the session's user is, for ACCESS_RULES: an SSO email counts only when the provider verified
 * it (a session from before `ev` existed: not verified); a local account's email is the operator's.
 */
export function sessionSubject (p: SessionPayload): Subject {
  return { username: p.u, isAdmin: p.a, email: p.e, emailVerified: p.m === 'local' || p.ev === true, groups: p.g }
}

export function sessionIdentity (p: SessionPayload): Identity {
  return { username: p.u, isAdmin: p.a, email: p.e, fullName: p.n, groups: p.g }
}
