// Verifying the identity headers the gateway signs (docs/PROTOCOL.md#the-signature, X-Auth-Signature).
// No server code here: only node:crypto and the rules of docs/PROTOCOL.md#the-signature, so any Node.js framework can use it.
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface VerifiedIdentity {
  username: string
  isAdmin: boolean
  email: string | null
  fullName: string | null
  groups: string[]
  /** Unix seconds at which the gateway signed the request */
  timestamp: number
}

export type VerifyFailure = 'missing' | 'malformed' | 'stale' | 'bad-signature'

export type VerifyResult =
  | { ok: true, identity: VerifiedIdentity }
  | { ok: false, reason: VerifyFailure, message: string }

export interface VerifyOptions {
  /** Accepted clock difference in seconds (default 60, as docs/PROTOCOL.md#the-signature). */
  maxSkewSeconds?: number
  /** Current Unix time in seconds (tests). */
  now?: number
}

/** Node's lower-cased header object (IncomingMessage, Fastify, Express) or a WHATWG Headers. */
export type HeaderSource = Record<string, string | string[] | undefined> | { get: (name: string) => string | null }

function header (headers: HeaderSource, name: string): string | undefined | null {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get: (name: string) => string | null }).get(name) ?? undefined
  }
  const value = (headers as Record<string, string | string[] | undefined>)[name]
  // Repeated headers are never produced by the gateway: refuse them rather than guess.
  if (Array.isArray(value)) return null
  return value
}

function decode (value: string): string | undefined {
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

/**
 * Verify X-Auth-Signature over the identity headers. `headers` is Node's lower-cased header object
 * (IncomingMessage.headers, Fastify, Express) or a WHATWG Headers.
 */
export function verifyIdentityHeaders (headers: HeaderSource, secret: string | readonly string[], options: VerifyOptions = {}): VerifyResult {
  const fail = (reason: VerifyFailure, message: string): VerifyResult => ({ ok: false, reason, message })
  const signature = header(headers, 'x-auth-signature')
  const timestamp = header(headers, 'x-auth-timestamp')
  const user = header(headers, 'x-user')
  if (signature === null || timestamp === null || user === null) return fail('malformed', 'identity header repeated')
  if (signature === undefined || timestamp === undefined || user === undefined) return fail('missing', 'no identity headers')
  const values = ['x-admin', 'x-email', 'x-full-name', 'x-groups'].map((n) => header(headers, n))
  if (values.includes(null)) return fail('malformed', 'identity header repeated')
  const [admin = '', email = '', fullName = '', groups = ''] = values as Array<string | undefined>
  if (!/^\d{1,12}$/.test(timestamp)) return fail('malformed', 'X-Auth-Timestamp is not a Unix time')
  if (!/^v1=[0-9a-f]{64}$/.test(signature)) return fail('malformed', 'X-Auth-Signature is not v1=<64 hex>')

  const canonical = ['v1', timestamp, user, admin, email, fullName, groups].join('\n')
  const given = Buffer.from(signature.slice(3), 'hex')
  // Several secrets: accepted during a HEADER_SIGNING_SECRET rotation (new first, then the old one).
  const secrets = typeof secret === 'string' ? [secret] : secret
  const matches = secrets.map((s) => timingSafeEqual(createHmac('sha256', s).update(canonical, 'utf8').digest(), given))
  if (!matches.includes(true)) return fail('bad-signature', 'X-Auth-Signature does not match')

  const now = options.now ?? Math.floor(Date.now() / 1000)
  const skew = options.maxSkewSeconds ?? 60
  if (Math.abs(now - Number(timestamp)) > skew) return fail('stale', `X-Auth-Timestamp is more than ${skew}s from now`)

  if (admin !== 'true' && admin !== 'false') return fail('malformed', 'X-Admin is not true or false')
  const decodedGroups = groups === '' ? [] : groups.split(',').map(decode)
  const username = decode(user)
  const decodedEmail = decode(email)
  const decodedName = decode(fullName)
  if (username === undefined || username === '' || decodedEmail === undefined || decodedName === undefined || decodedGroups.includes(undefined)) {
    return fail('malformed', 'identity header is not valid percent-encoded UTF-8')
  }
  return {
    ok: true,
    identity: {
      username,
      isAdmin: admin === 'true',
      email: decodedEmail === '' ? null : decodedEmail,
      fullName: decodedName === '' ? null : decodedName,
      groups: decodedGroups as string[],
      timestamp: Number(timestamp)
    }
  }
}
