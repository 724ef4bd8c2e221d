// Forward-auth mode: `/_authgate/auth` for front proxies that keep proxying themselves (nginx
// auth_request, ingress-nginx auth-url, Traefik ForwardAuth, Caddy forward_auth). 200 with the
// identity headers for a valid session, 401 otherwise, 403 when ACCESS_RULES refuse the URI the
// front proxy reports. The front proxy, not this route, decides which paths need a session: the
// reported URI can only narrow access (every URI reported must pass), never grant it.
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import type { Sessions } from '../session/index.js'
import { sessionIdentity, sessionSubject } from '../session/session.js'
import type { IdentityIssuer } from '../identity/issuer.js'
import { safeNextPath } from '../auth/next-url.js'
import { isBrowserNavigation, normalizeRequestTarget } from './access.js'
import { checkAccess, type AccessRule, type Subject } from '../policy/access-rules.js'
import type { Metrics } from '../ops/metrics.js'
import type { SessionRevalidator } from '../auth/oidc/revalidation.js'
import { RETRY_AFTER_SECONDS, SESSIONS_UNAVAILABLE } from '../pages/unavailable.js'
import type { LocalMfa } from '../config/sign-in.js'
import { ACCOUNT_PATH, secondFactorHold } from '../auth/mfa/gate.js'

export interface ForwardAuthDeps {
  sessions: Sessions
  issuer: IdentityIssuer
  /** ACCESS_RULES, applied to the URI the front proxy reports. */
  accessRules: readonly AccessRule[]
  metrics: Metrics
  /** SSO sessions' re-validation with the IdP, started by their own checks (none: off). */
  revalidator?: Pick<SessionRevalidator, 'touch'>
  /** LOCAL_MFA: with `required`, a session without a second factor is refused until its user enrols one. */
  localMfa?: LocalMfa
}

export const FORWARD_AUTH_PATH = '/_authgate/auth'

type Headers = FastifyRequest['headers']

const single = (value: string | string[] | undefined): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined

/**
 * The original request as the front proxy reports it: Traefik and Caddy send X-Forwarded-Method and
 * X-Forwarded-Uri, nginx examples X-Original-Method and X-Original-URI, ingress-nginx X-Original-URL
 * (absolute). Only used to choose between a login redirect and a 401, and for `next`.
 */
export function originalRequest (headers: Headers, ownMethod: string): { method: string, uri: string | undefined } {
  const method = (single(headers['x-forwarded-method']) ?? single(headers['x-original-method']) ?? ownMethod).toUpperCase()
  let uri = single(headers['x-forwarded-uri']) ?? single(headers['x-original-uri'])
  const url = single(headers['x-original-url'])
  if (uri === undefined && url !== undefined) {
    try {
      const parsed = new URL(url)
      uri = parsed.pathname + parsed.search
    } catch {
      uri = undefined
    }
  }
  return { method, uri }
}

const URI_HEADERS = ['x-forwarded-uri', 'x-original-uri'] as const

/**
 * Every path the front proxy (or anyone before it) reports, normalised like a proxied request's.
 * All of them, not the first: nginx passes the client's own headers to its auth subrequest, so a
 * forged X-Forwarded-Uri beside nginx's X-Original-URI must not decide. undefined: a header
 * repeated, or a URI that is not a path (refused, as a proxied request would be).
 * `rawHeaders` (request.raw.rawHeaders) is how a repeated header is seen: Node joins repeated
 * headers into one value ("/ok, /admin"), which would otherwise read as one harmless path.
 */
export function reportedPaths (headers: Headers, rawHeaders: readonly string[]): string[] | undefined {
  const paths: string[] = []
  for (const name of [...URI_HEADERS, 'x-original-url'] as const) {
    const value = headers[name]
    if (value === undefined || value === '') continue
    if (typeof value !== 'string' || timesSent(rawHeaders, name) > 1) return undefined
    let target = value
    if (name === 'x-original-url') {
      try {
        const parsed = new URL(value)
        target = parsed.pathname + parsed.search
      } catch {
        return undefined
      }
    }
    const normalised = normalizeRequestTarget(target)
    if (normalised === undefined) return undefined
    paths.push(normalised.path)
  }
  return paths
}

/** How many times the header `name` (lower case) was sent; rawHeaders alternates names and values. */
function timesSent (rawHeaders: readonly string[], name: string): number {
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) count++
  return count
}

function firstRefusal (rules: readonly AccessRule[], paths: string[], subject: Subject): 'rule' | 'ambiguous-path' | undefined {
  for (const path of paths) {
    const decision = checkAccess(rules, path, subject)
    if (!decision.ok) return decision.reason
  }
  return undefined
}

/**
 * The unauthenticated answer. Always 401 by default: nginx auth_request treats anything but
 * 2xx/401/403 as an error. `?redirect=true` (for Traefik, which returns the answer to the client
 * as is) sends browser navigations a 302 to the login page instead.
 */
export function unauthenticatedAnswer (headers: Headers, ownMethod: string, redirect: boolean): { status: 401 } | { status: 302, location: string } {
  if (!redirect) return { status: 401 }
  const original = originalRequest(headers, ownMethod)
  if (!isBrowserNavigation(original.method, single(headers.accept))) return { status: 401 }
  return { status: 302, location: '/login?next=' + encodeURIComponent(safeNextPath(original.uri)) }
}

export const forwardAuthRoutes: FastifyPluginAsync<ForwardAuthDeps> = async (app, deps) => {
  // nginx's subrequest keeps the original method and Content-Type but has no body: accept every
  // method and ignore any body, so a POST with a JSON or multipart type is not refused with 415.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => {
    payload.resume()
    done(null)
  })

  const check = async (request: FastifyRequest<{ Querystring: { redirect?: string } }>, reply: FastifyReply): Promise<FastifyReply> => {
    void reply.header('cache-control', 'no-store').header('vary', 'cookie')
    const checked = deps.sessions.check(request)
    if (checked.ok) {
      const { session } = checked
      // Due for re-validation: in the background; this check answers with the identity it has.
      deps.revalidator?.touch(session)
      if (secondFactorHold(deps.localMfa ?? 'off', session) !== undefined) {
        // Signed in only to enrol a second factor: nothing of the application yet. 403 (nginx
        // auth_request passes it on); with ?redirect=true a navigation goes to the account page.
        request.accessDecision = 'forward-auth-refused'
        const original = originalRequest(request.headers, request.method)
        if (request.query.redirect === 'true' && isBrowserNavigation(original.method, single(request.headers.accept))) return await reply.redirect(ACCOUNT_PATH, 302)
        return await reply.code(403).send({ error: 'second_factor_required' })
      }
      if (deps.accessRules.length > 0) {
        const paths = reportedPaths(request.headers, request.raw.rawHeaders)
        const reason = paths === undefined ? 'ambiguous-path' : paths.length === 0 ? 'no-reported-uri' : firstRefusal(deps.accessRules, paths, sessionSubject(session))
        if (reason !== undefined) {
          request.accessDecision = 'forward-auth-refused'
          deps.metrics.accessRefused.inc(reason)
          request.log.info({ user: session.u, reason }, 'refused by ACCESS_RULES')
          return await reply.code(403).send({ error: 'forbidden' })
        }
      }
      request.accessDecision = 'forward-auth'
      return await reply.code(200).headers(await deps.issuer.headersFor(sessionIdentity(session), session)).send()
    }
    if (checked.reason === 'unverifiable') {
      // Neither 401 (the front proxy would send the user to sign in, which cannot work now) nor 200.
      request.accessDecision = 'unavailable'
      return await reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ error: 'sessions_unavailable', message: SESSIONS_UNAVAILABLE.message })
    }
    request.accessDecision = 'forward-auth-refused'
    if (checked.reason !== 'absent') request.log.info({ reason: checked.reason }, 'session cookie refused')
    const answer = unauthenticatedAnswer(request.headers, request.method, request.query.redirect === 'true')
    if (answer.status === 302) return await reply.redirect(answer.location, 302)
    return await reply.code(401).send({ error: 'unauthenticated' })
  }

  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: FORWARD_AUTH_PATH, exposeHeadRoute: false, handler: check })
}
