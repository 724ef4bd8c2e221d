// Keeping the session cookie under the browsers' 4 KB per cookie, whatever the IdP sends. A cookie
// over the limit is silently dropped by the browser, which then loops through login (the seed
// application and oauth2-proxy both had that bug with large ID tokens and group lists). Only the ID
// token may be left out to fit: never a group, since an upstream that denies by group ("suspended")
// would then grant what the group denies. An identity that does not fit is refused instead.
import { newSessionId, newSessionPayload, type SessionPayload, type SessionUser } from './session.js'

/** Bytes of `name=value` we allow; browsers refuse name+value above 4096, attributes come on top. */
export const SESSION_COOKIE_BUDGET = 3800

/**
 * The cookie's name=value size for this payload, slightly overestimated: @fastify/secure-session
 * stores base64(secretbox(JSON {s, __ts}) ) + ";" + base64(24-byte nonce), and the cookie serializer
 * percent-encodes "+", "/", "=" and ";" (about 1 in 32 base64 characters; 15% covers any real draw).
 */
export function estimateSessionCookieSize (cookieName: string, payload: SessionPayload): number {
  const json = Buffer.byteLength(JSON.stringify({ s: payload, __ts: 9_999_999_999 }))
  const ciphertext = Math.ceil((json + 16) / 3) * 4
  return cookieName.length + 1 + Math.ceil(ciphertext * 1.15) + 3 + Math.ceil(32 * 1.15)
}

export type FittedPayload =
  | { fits: true, payload: SessionPayload, droppedIdToken: boolean }
  /** `bytes`: the estimated cookie without the ID token; `groups`: how many the identity has. */
  | { fits: false, bytes: number, budget: number, groups: number }

/**
 * Make the payload fit by leaving out the ID token (it only serves as id_token_hint at logout, which
 * then sends client_id instead), or say that it does not fit.
 */
export function fitSessionPayload (cookieName: string, payload: SessionPayload, budget = SESSION_COOKIE_BUDGET): FittedPayload {
  const size = (p: SessionPayload): number => estimateSessionCookieSize(cookieName, p)
  if (size(payload) <= budget) return { fits: true, payload, droppedIdToken: false }
  const { idt, ...withoutIdToken } = payload
  const bytes = size(withoutIdToken)
  if (bytes <= budget) return { fits: true, payload: withoutIdToken, droppedIdToken: idt !== undefined }
  return { fits: false, bytes, budget, groups: payload.g.length }
}

/**
 * Whether a session for this identity will fit, asked before the sign-in writes anything: the user
 * id and the timestamps are taken at their largest (the session id has a fixed length), the ID token is left out (it may be).
 */
export function identityFitsSession (cookieName: string, user: Omit<SessionUser, 'id' | 'isAdmin'>, budget = SESSION_COOKIE_BUDGET): FittedPayload {
  const probe = newSessionPayload(newSessionId(), { ...user, id: Number.MAX_SAFE_INTEGER, isAdmin: false }, 'oidc', 0, 9_999_999_999)
  return fitSessionPayload(cookieName, probe, budget)
}

/** Thrown by Sessions.start rather than cutting the identity down. */
export class SessionTooLargeError extends Error {
  constructor (readonly bytes: number, readonly budget: number, readonly groups: number) {
    super(`the session for this identity (${groups} groups) needs about ${bytes} bytes in its cookie, at most ${budget} fit`)
    this.name = 'SessionTooLargeError'
  }
}
