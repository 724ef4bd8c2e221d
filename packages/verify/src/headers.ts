// Verifying the identity headers the gateway signs (X-Auth-Signature, an HMAC-SHA256 over the
// identity and the time; the gateway's docs/PROTOCOL.md#the-signature): guards an upstream against
// forged or replayed identity headers. No server code here: only node:crypto, so any Node.js
// framework can use it.
import { createHmac, timingSafeEqual } from 'node:crypto'

/** The identity the signed headers carry, decoded from their percent-encoding. */
export interface VerifiedIdentity {
  /** X-User: the signed-in user's name at the gateway (never empty). */
  username: string
  /** X-Admin: whether the gateway treats the user as an administrator. */
  isAdmin: boolean
  /** X-Email, or null when empty. */
  email: string | null
  /** X-Full-Name, or null when empty. */
  fullName: string | null
  /** X-Groups, split at `,` and decoded (empty when none). */
  groups: string[]
  /** X-Auth-Timestamp: Unix seconds at which the gateway signed the request. */
  timestamp: number
}

/**
 * Why the headers were refused:
 * - `missing`: no X-User, X-Auth-Timestamp or X-Auth-Signature (the request did not come through
 *   the gateway with a session);
 * - `malformed`: a header repeated, a timestamp or signature of the wrong form, X-Admin not
 *   `true`/`false`, or a value that is not valid percent-encoded UTF-8;
 * - `bad-signature`: X-Auth-Signature does not match any of the secrets (forged, altered, or
 *   signed with another HEADER_SIGNING_SECRET);
 * - `stale`: X-Auth-Timestamp is more than `maxSkewSeconds` away from this machine's clock (a
 *   replay, or clocks that disagree).
 */
export type VerifyFailure = 'missing' | 'malformed' | 'stale' | 'bad-signature'

/** What {@link verifyIdentityHeaders} returns: it never throws for bad headers. */
export type VerifyResult =
  | { ok: true, identity: VerifiedIdentity }
  | { ok: false, reason: VerifyFailure, message: string }

/** Options of {@link verifyIdentityHeaders}. */
export interface VerifyOptions {
// Verifying the identity headers the gateway signs (X-Auth-Signature, an HMAC-SHA256 over the
// identity and the time; the gateway's docs/PROTOCOL.md#the-signature): guards an upstream against
// forged or replayed identity headers. No server code here: only node:crypto, so any Node.js
// framework can use it.
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
 * Verifies X-Auth-Signature over the identity headers (X-User, X-Admin, X-Email, X-Full-Name,
 * X-Groups, X-Auth-Timestamp), in constant time, and decodes the identity.
 *
 * @param headers - Node's lower-cased header object (`IncomingMessage.headers`, Fastify's and
 *   Express's `req.headers`) or a WHATWG `Headers` (fetch, Hono, Next.js route handlers).
 * @param secret - The gateway's HEADER_SIGNING_SECRET; during a rotation a list (`[NEW, OLD]`), any
 *   of which may match.
 * @param options - Clock tolerance (`maxSkewSeconds`, default 60) and, for tests, `now`.
 * @returns `{ ok: true, identity }`, or `{ ok: false, reason, message }` with one of the
 *   {@link VerifyFailure} reasons. Never throws for bad headers.
 *
 * @example
 * ```ts
 * import { verifyIdentityHeaders } from '@authgate/verify'
 *
 * const result = verifyIdentityHeaders(req.headers, process.env.HEADER_SIGNING_SECRET!)
 * if (!result.ok) return res.status(401).json({ error: result.reason })
 * console.log(result.identity.username, result.identity.isAdmin, result.identity.groups)
 * ```
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
