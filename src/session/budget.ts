// Keeping the session cookie under the browsers' 4 KB per cookie, whatever the IdP sends. A cookie
// over the limit is silently dropped by the browser, which then loops through login (the seed
// application and oauth2-proxy both had that bug with large ID tokens and group lists).
import type { SessionPayload } from './session.js'

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

export interface FittedPayload {
  payload: SessionPayload
  droppedIdToken: boolean
  droppedGroups: number
}

/**
 * Make the payload fit: first drop the ID token (it only serves as id_token_hint at logout, which
 * then sends client_id instead), then groups from the end of the list. Losing groups can only
 * reduce what the upstream grants, never widen it, and the caller logs what was dropped.
 */
export function fitSessionPayload (cookieName: string, payload: SessionPayload, budget = SESSION_COOKIE_BUDGET): FittedPayload {
  const fits = (p: SessionPayload): boolean => estimateSessionCookieSize(cookieName, p) <= budget
  if (fits(payload)) return { payload, droppedIdToken: false, droppedGroups: 0 }
  const { idt, ...withoutIdToken } = payload
  const droppedIdToken = idt !== undefined
  if (fits(withoutIdToken)) return { payload: withoutIdToken, droppedIdToken, droppedGroups: 0 }
  // The largest prefix of the groups that fits (binary search: lists can be long).
  let low = 0
  let high = payload.g.length
  while (low < high) {
    const mid = Math.ceil((low + high) / 2)
    if (fits({ ...withoutIdToken, g: payload.g.slice(0, mid) })) low = mid
    else high = mid - 1
  }
  return { payload: { ...withoutIdToken, g: payload.g.slice(0, low) }, droppedIdToken, droppedGroups: payload.g.length - low }
}
