// The identity headers of docs/PROTOCOL.md#identity-headers: which incoming headers are stripped, how values are encoded, and
// the HMAC-SHA256 "v1" signature. Pure functions: the proxy, forward-auth and tests all use these.
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'

export interface Identity {
  username: string
  isAdmin: boolean
  email: string | null
  fullName: string | null
  groups: string[]
}

export const SIGNED_HEADERS = ['x-user', 'x-admin', 'x-email', 'x-full-name', 'x-groups'] as const
export const TIMESTAMP_HEADER = 'x-auth-timestamp'
export const SIGNATURE_HEADER = 'x-auth-signature'
/** The optional JWT assertion (IDENTITY_JWT); stripped like the others so it can never be forged. */
export const ASSERTION_HEADER = 'x-identity-assertion'

const GATEWAY_HEADERS = new Set<string>([...SIGNED_HEADERS, TIMESTAMP_HEADER, SIGNATURE_HEADER, ASSERTION_HEADER])

/** The first letters of the gateway's header names: most request headers are told apart by theirs alone (the proxy asks for each one). */
const FIRST_LETTERS = new Set([...GATEWAY_HEADERS].map((name) => name.charCodeAt(0)))

/**
 * True for every spelling a server or framework might read as one of our headers: case-insensitive,
 * with `_` and `.` read as `-` (WSGI turns `X-User` and `X_User` into the same HTTP_X_USER).
 */
export function isGatewayHeader (name: string): boolean {
  return FIRST_LETTERS.has(name.charCodeAt(0) | 0x20) && GATEWAY_HEADERS.has(name.toLowerCase().replace(/[_.]/g, '-'))
}

export type HeaderMap = Record<string, string | string[] | undefined>

/** UTF-8 percent-encoding exactly as encodeURIComponent (Python: quote(s, safe="-_.!~*'()")). */
export function encodeHeaderValue (value: string): string {
  // encodeURIComponent throws on lone surrogates; replace them so a hostile claim cannot cause a 500.
  return encodeURIComponent(value.toWellFormed())
}

export type IdentityHeaders = Record<'x-user' | 'x-admin' | 'x-email' | 'x-full-name' | 'x-groups' | 'x-auth-timestamp' | 'x-auth-signature', string>

/** The signed values of an identity, encoded as they are sent (without timestamp and signature). */
export function encodeIdentity (identity: Identity): Record<typeof SIGNED_HEADERS[number], string> {
  return {
    'x-user': encodeHeaderValue(identity.username),
    'x-admin': identity.isAdmin ? 'true' : 'false',
    'x-email': encodeHeaderValue(identity.email ?? ''),
    'x-full-name': encodeHeaderValue(identity.fullName ?? ''),
    'x-groups': identity.groups.map(encodeHeaderValue).join(',')
  }
}

/** The last five lines of the signed string: the encoded values, which identify an identity unambiguously. */
function signedValues (encoded: Record<typeof SIGNED_HEADERS[number], string>): string {
  return `${encoded['x-user']}\n${encoded['x-admin']}\n${encoded['x-email']}\n${encoded['x-full-name']}\n${encoded['x-groups']}`
}

/** The string that is signed: seven lines, no trailing newline (docs/PROTOCOL.md#the-signature). */
export function canonicalString (timestamp: string, encoded: Record<typeof SIGNED_HEADERS[number], string>): string {
  return `v1\n${timestamp}\n${signedValues(encoded)}`
}

export function signCanonical (secret: string | KeyObject, canonical: string): string {
  return 'v1=' + createHmac('sha256', secret).update(canonical, 'utf8').digest('hex')
}

/** The complete header set for one identity, signed at `nowSeconds`. */
export function signIdentity (identity: Identity, secret: string, nowSeconds: number = Math.floor(Date.now() / 1000)): IdentityHeaders {
  const encoded = encodeIdentity(identity)
  const timestamp = String(nowSeconds)
  return { ...encoded, 'x-auth-timestamp': timestamp, 'x-auth-signature': signCanonical(secret, canonicalString(timestamp, encoded)) }
}

/** Identities whose signed headers an {@link IdentitySigner} keeps (for the current second) at most. */
export const SIGNED_IDENTITIES_KEPT = 10_000

/**
 * signIdentity for one secret, as the gateway signs every proxied request: the secret is imported
 * once, and an identity's headers, signed for the current second, serve every request of that
 * identity within it (a page and its assets are many requests in the same second). The headers
 * returned are shared, hence frozen.
 */
export class IdentitySigner {
  private readonly key: KeyObject
  /** By signedValues: the identity's headers, as last signed. */
  private readonly signed = new Map<string, Readonly<IdentityHeaders>>()

  constructor (secret: string) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'))
  }

  sign (identity: Identity, nowSeconds: number): Readonly<IdentityHeaders> {
    const encoded = encodeIdentity(identity)
    const values = signedValues(encoded)
    const timestamp = String(nowSeconds)
    const last = this.signed.get(values)
    if (last !== undefined && last['x-auth-timestamp'] === timestamp) return last
    const headers = Object.freeze({ ...encoded, 'x-auth-timestamp': timestamp, 'x-auth-signature': signCanonical(this.key, `v1\n${timestamp}\n${values}`) })
    // A bound, not an eviction policy: whoever is active is signed again within a second.
    if (last === undefined && this.signed.size >= SIGNED_IDENTITIES_KEPT) this.signed.clear()
    this.signed.set(values, headers)
    return headers
  }
}
