// One check for a whole request (the HMAC headers, the JWT assertion, or both) and thin adapters
// for Fastify and Express/Connect/node:http. Structural types only: no framework is imported.
import { verifyIdentityHeaders, type HeaderSource, type VerifiedIdentity, type VerifyFailure } from './headers.js'
import { RemoteJwks, verifyIdentityAssertion, type AssertionFailure, type KeySource, type VerifiedAssertion } from './assertion.js'

/** Who made the request, as {@link createRequestVerifier} and the middleware report it (`req.authgate`). */
export interface RequestIdentity {
  /** The signed-in user's name at the gateway. */
  username: string
  /** Whether the gateway treats the user as an administrator. */
  isAdmin: boolean
  /** The user's email, or null. */
  email: string | null
  /** The user's full name, or null. */
  fullName: string | null
  /** The user's groups (empty when none). */
  groups: string[]
  /** Present when the HMAC headers were checked. */
  headers?: VerifiedIdentity
  /** Present when the JWT assertion was checked (its `subject` is the gateway's user id). */
  assertion?: VerifiedAssertion
}

/**
 * Why a request was refused: a {@link VerifyFailure} of the signed headers, an
 * {@link AssertionFailure} of the JWT, or `mismatch` when both were checked and describe different users.
 */
export type RequestFailure = VerifyFailure | AssertionFailure | 'mismatch'

/**
 * What the check returns: `identity` is undefined only for a request without any identity header
 * that `allowAnonymous` let through.
 */
export type RequestResult =
  | { ok: true, identity: RequestIdentity | undefined }
  | { ok: false, reason: RequestFailure, message: string }

/** What to check. At least one of `secret` and `assertion`; with both, both must verify and agree. */
export interface AuthgateOptions {
  /**
   * HEADER_SIGNING_SECRET: verify X-Auth-Signature (at least 32 characters). Several during a
   * rotation: `[NEW, OLD]`.
   */
  secret?: string | readonly string[]
  /**
   * Verify X-Identity-Assertion (IDENTITY_JWT=true) against the gateway's keys: `jwks` is the
   * gateway's `/_authgate/jwks.json` URL (fetched and cached by a {@link RemoteJwks}) or a
   * {@link KeySource}; `issuer` the gateway's PUBLIC_URL origin; `audience` IDENTITY_JWT_AUDIENCE
   * (by default the upstream's own origin).
   */
  assertion?: { jwks: string | URL | KeySource, issuer: string, audience: string }
  /** Accepted clock difference in seconds (default 60). */
  maxSkewSeconds?: number
  /**
   * Let requests that carry no identity at all through, with identity undefined (the paths the
   * gateway forwards without a session, SKIP_AUTH_PATHS). Headers that are present must verify.
   */
  allowAnonymous?: boolean
}

const IDENTITY_HEADERS = ['x-user', 'x-admin', 'x-email', 'x-full-name', 'x-groups', 'x-auth-timestamp', 'x-auth-signature', 'x-identity-assertion']

function headerValue (headers: HeaderSource, name: string): string | string[] | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') return (headers as { get: (n: string) => string | null }).get(name) ?? undefined
  return (headers as Record<string, string | string[] | undefined>)[name]
}

const sameIdentity = (a: VerifiedIdentity, b: VerifiedAssertion): boolean =>
  a.username === b.username && a.isAdmin === b.isAdmin && a.email === b.email && a.fullName === b.fullName &&
  a.groups.length === b.groups.length && a.groups.every((g, i) => g === b.groups[i])

/**
 * Builds the check for a whole request: the signed headers, the JWT assertion, or both. Build it
 * once (it holds the JWKS cache), then call it for every request; it is what the middleware use.
 *
 * @param options - What to check: `secret`, `assertion`, or both; `maxSkewSeconds`; `allowAnonymous`.
 * @returns An async function of the request's headers (Node's header object or a WHATWG `Headers`)
 *   that resolves to `{ ok: true, identity }` or `{ ok: false, reason, message }`; it never
 *   rejects for bad headers.
 * @throws TypeError when neither `secret` nor `assertion` is given, or a secret is shorter than 32
 *   characters (a configuration mistake, reported at startup rather than per request).
 *
 * @example
 * ```ts
 * const check = createRequestVerifier({ secret: process.env.HEADER_SIGNING_SECRET! })
 * export async function GET (request: Request): Promise<Response> {
 *   const result = await check(request.headers)
 *   if (!result.ok) return new Response(null, { status: 401 })
 *   return Response.json({ hello: result.identity?.username })
 * }
 * ```
 */
export function createRequestVerifier (options: AuthgateOptions): (headers: HeaderSource) => Promise<RequestResult> {
  if (options.secret === undefined && options.assertion === undefined) {
    throw new TypeError('@authgate/verify: give `secret` (HEADER_SIGNING_SECRET), `assertion` (JWKS), or both')
  }
  const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret
  if (secrets !== undefined && (secrets.length === 0 || secrets.some((s) => s.length < 32))) {
    throw new TypeError('@authgate/verify: `secret` must be the gateway\'s HEADER_SIGNING_SECRET (at least 32 characters)')
  }
  const jwks = options.assertion === undefined
    ? undefined
    : typeof options.assertion.jwks === 'string' || options.assertion.jwks instanceof URL ? new RemoteJwks(options.assertion.jwks) : options.assertion.jwks
  const skew = options.maxSkewSeconds

  return async (headers) => {
    if (options.allowAnonymous === true && IDENTITY_HEADERS.every((n) => headerValue(headers, n) === undefined)) {
      return { ok: true, identity: undefined }
    }
    let signed: VerifiedIdentity | undefined
    if (secrets !== undefined) {
      const result = verifyIdentityHeaders(headers, secrets, { maxSkewSeconds: skew })
      if (!result.ok) return result
      signed = result.identity
    }
    let assertion: VerifiedAssertion | undefined
    if (options.assertion !== undefined && jwks !== undefined) {
      const result = await verifyIdentityAssertion(headerValue(headers, 'x-identity-assertion'), jwks, {
        issuer: options.assertion.issuer,
        audience: options.assertion.audience,
        maxSkewSeconds: skew
      })
      if (!result.ok) return result
      assertion = result.assertion
    }
    // Both checked: they must describe the same person (they always do when both come from the gateway).
    if (signed !== undefined && assertion !== undefined && !sameIdentity(signed, assertion)) {
      return { ok: false, reason: 'mismatch', message: 'X-Identity-Assertion and the signed headers disagree' }
    }
    const base = (signed ?? assertion)!
    return {
      ok: true,
      identity: {
        username: base.username,
        isAdmin: base.isAdmin,
        email: base.email,
        fullName: base.fullName,
        groups: base.groups,
        ...(signed !== undefined ? { headers: signed } : {}),
        ...(assertion !== undefined ? { assertion } : {})
      }
    }
  }
}

const refusal = (reason: RequestFailure): string => JSON.stringify({ error: 'unauthenticated', reason })

interface NodeLikeResponse {
  statusCode: number
  setHeader: (name: string, value: string) => unknown
  end: (body: string) => unknown
}

/**
 * Express / Connect / node:http middleware. Sets `req.authgate` to the {@link RequestIdentity} and
 * calls `next()`, or answers `401` with `{"error":"unauthenticated","reason":"<reason>"}`
 * (`Cache-Control: no-store`) without calling `next`.
 *
 * @param options - See {@link AuthgateOptions}.
 * @returns The middleware `(req, res, next)`.
 * @throws TypeError for options that cannot work (see {@link createRequestVerifier}).
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { authgateExpress, type RequestIdentity } from '@authgate/verify'
 *
 * const app = express()
 * app.use(authgateExpress({ secret: process.env.HEADER_SIGNING_SECRET! }))
 * app.get('/', (req, res) => {
 *   const user = (req as typeof req & { authgate: RequestIdentity }).authgate
 *   res.send(`Hello ${user.username}`)
 * })
 * ```
 */
export function authgateExpress (options: AuthgateOptions): (req: { headers: HeaderSource, authgate?: RequestIdentity }, res: NodeLikeResponse, next: (err?: unknown) => void) => void {
  const check = createRequestVerifier(options)
  return (req, res, next) => {
    check(req.headers).then((result) => {
      if (result.ok) {
        req.authgate = result.identity
        next()
        return
      }
      res.statusCode = 401
      res.setHeader('content-type', 'application/json; charset=utf-8')
      res.setHeader('cache-control', 'no-store')
      res.end(refusal(result.reason))
    }, next)
  }
}

interface FastifyLikeReply {
  code: (status: number) => FastifyLikeReply
  header: (name: string, value: string) => FastifyLikeReply
  send: (body: string) => unknown
}

/**
 * A Fastify hook (`onRequest` or `preHandler`, globally or per route). Sets `request.authgate` to
 * the {@link RequestIdentity}, or answers `401` with `{"error":"unauthenticated","reason":"<reason>"}`
 * (`Cache-Control: no-store`). Declare the property once with
 * `app.decorateRequest('authgate', undefined)`, or register {@link fastifyAuthgate}, which does both.
 *
 * @param options - See {@link AuthgateOptions}.
 * @returns The hook `async (request, reply)`.
 * @throws TypeError for options that cannot work (see {@link createRequestVerifier}).
 *
 * @example
 * ```ts
 * app.decorateRequest('authgate', undefined)
 * app.get('/admin', { onRequest: authgateFastify({ secret }) }, async (request) => request.authgate)
 * ```
 */
export function authgateFastify (options: AuthgateOptions): (request: { headers: HeaderSource, authgate?: RequestIdentity }, reply: FastifyLikeReply) => Promise<void> {
  const check = createRequestVerifier(options)
  return async (request, reply) => {
    const result = await check(request.headers)
    if (result.ok) {
      request.authgate = result.identity
      return
    }
    await reply.code(401).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(refusal(result.reason))
  }
}

interface FastifyLikeInstance {
  decorateRequest: (name: string, value: undefined) => unknown
  addHook: (name: 'onRequest', hook: ReturnType<typeof authgateFastify>) => unknown
}

/**
 * Fastify plugin: checks every request of the instance it is registered on (not encapsulated, as
 * fastify-plugin would do) with an `onRequest` hook, and declares `request.authgate`.
 *
 * @param fastify - The Fastify instance (given by `register`).
 * @param options - See {@link AuthgateOptions}.
 * @throws TypeError for options that cannot work (see {@link createRequestVerifier}); `register` rejects with it.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import { fastifyAuthgate, type RequestIdentity } from '@authgate/verify'
 *
 * // Typing request.authgate (this package does not import Fastify, so it declares nothing there):
 * declare module 'fastify' { interface FastifyRequest { authgate?: RequestIdentity } }
 *
 * const app = Fastify()
 * await app.register(fastifyAuthgate, { secret: process.env.HEADER_SIGNING_SECRET!, allowAnonymous: true })
 * app.get('/', async (request) => ({ user: request.authgate?.username ?? null }))
 * ```
 */
export const fastifyAuthgate = Object.assign(
  async function fastifyAuthgate (fastify: FastifyLikeInstance, options: AuthgateOptions): Promise<void> {
    fastify.decorateRequest('authgate', undefined)
    fastify.addHook('onRequest', authgateFastify(options))
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'authgate-verify' }
)
