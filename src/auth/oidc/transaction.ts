// The OIDC transaction: what /login/oidc must remember until /auth/oidc/callback (PKCE verifier,
// nonce, where to go next), kept by the browser in one encrypted cookie per flow, named after the
// flow's `state`. One cookie per flow lets several tabs sign in at once; the state in the cookie
// name (bound by AES-GCM as additional data) is how the callback finds its own flow.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { randomNonce, randomPKCECodeVerifier } from 'openid-client'

export interface OidcTransaction {
  state: string
  nonce: string
  verifier: string
  /** Validated `next` path. */
  next: string
  /** The provider the flow was started at (its id; empty: the first); the callback validates against that one only. */
  provider: string
  /** Unix seconds */
  createdAt: number
}

/** Ten minutes to sign in at the IdP; the cookie's Max-Age and the callback's check agree. */
export const TRANSACTION_MAX_AGE = 600
/** Flows in progress per browser: enough for a handful of tabs, bounded so cookies cannot pile up. */
export const MAX_PENDING_FLOWS = 5
/** Bytes of transaction cookies (name=value) per browser, far below servers' 16 KB header limits. */
export const PENDING_FLOWS_BUDGET = 8 * 1024

const STATE = /^[\w-]{32}$/
const VERSION = 'v1.'

export function isWellFormedState (value: unknown): value is string {
  return typeof value === 'string' && STATE.test(value)
}

/** `provider`: the id of the provider the flow starts at; empty for the only one (OIDC_PROVIDERS unset). */
export function newTransaction (next: string, now: number, provider = ''): OidcTransaction {
  return { state: randomBytes(24).toString('base64url'), nonce: randomNonce(), verifier: randomPKCECodeVerifier(), next, provider, createdAt: now }
}

export function transactionCookieName (prefix: string, state: string): string {
  return prefix + state
}

/** The state a transaction cookie belongs to, or undefined for any other cookie. */
export function stateOfCookie (prefix: string, name: string): string | undefined {
  if (!name.startsWith(prefix)) return undefined
  const state = name.slice(prefix.length)
  return isWellFormedState(state) ? state : undefined
}

const aad = (state: string): Buffer => Buffer.from('authgate-oidc-transaction:' + state)

/** Encrypt with the first key (AES-256-GCM, random IV). */
export function sealTransaction (key: Buffer, tx: OidcTransaction): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(aad(tx.state))
  const plain = Buffer.from(JSON.stringify({ n: tx.nonce, v: tx.verifier, x: tx.next, p: tx.provider, t: tx.createdAt }))
  const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  return VERSION + sealed.toString('base64url')
}

/**
 * The transaction sealed under `state` with any of `keys` (current first, then SECRET_KEY_PREVIOUS),
 * or undefined: tampered, another state's cookie, unknown key, malformed or expired. Fails closed.
 */
export function openTransaction (keys: Buffer[], state: string, sealed: unknown, now: number): OidcTransaction | undefined {
  if (!isWellFormedState(state) || typeof sealed !== 'string' || !sealed.startsWith(VERSION) || sealed.length > 4096) return undefined
  const raw = Buffer.from(sealed.slice(VERSION.length), 'base64url')
  if (raw.length < 12 + 16 + 2) return undefined
  for (const key of keys) {
    let plain: Buffer
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
      decipher.setAAD(aad(state))
      decipher.setAuthTag(raw.subarray(raw.length - 16))
      plain = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()])
    } catch {
      continue
    }
    return parseTransaction(state, plain, now)
  }
  return undefined
}

function parseTransaction (state: string, plain: Buffer, now: number): OidcTransaction | undefined {
  let value: unknown
  try {
    value = JSON.parse(plain.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { n, v, x, p, t } = value as Record<string, unknown>
  if (typeof n !== 'string' || typeof v !== 'string' || typeof x !== 'string' || typeof t !== 'number' || !Number.isSafeInteger(t)) return undefined
  // A flow started before providers were recorded (an upgrade within its ten minutes): the first one's.
  if (p !== undefined && typeof p !== 'string') return undefined
  // Expired, or from the future beyond a minute of clock skew between gateway instances.
  if (now - t >= TRANSACTION_MAX_AGE || t - now > 60) return undefined
  return { state, nonce: n, verifier: v, next: x, provider: p ?? '', createdAt: t }
}

export interface PendingFlow {
  name: string
  /** undefined: not readable (other key, tampered, expired): always evicted first. */
  createdAt: number | undefined
  /** Bytes of name=value */
  size: number
}

/**
 * Which existing transaction cookies to delete so that, with the new one, at most MAX_PENDING_FLOWS
 * remain within PENDING_FLOWS_BUDGET bytes: unreadable ones first, then the oldest.
 */
export function flowsToEvict (existing: PendingFlow[], incomingSize: number, limits = { count: MAX_PENDING_FLOWS, bytes: PENDING_FLOWS_BUDGET }): string[] {
  const oldestFirst = [...existing].sort((a, b) => (a.createdAt ?? -Infinity) - (b.createdAt ?? -Infinity))
  const evict: string[] = []
  let count = existing.length + 1
  let bytes = existing.reduce((sum, f) => sum + f.size, 0) + incomingSize
  for (const flow of oldestFirst) {
    if (count <= limits.count && bytes <= limits.bytes && flow.createdAt !== undefined) break
    evict.push(flow.name)
    count -= 1
    bytes -= flow.size
  }
  return evict
}
