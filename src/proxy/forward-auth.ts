// Forward-auth mode: `/_authgate/auth` for front proxies that keep proxying themselves (nginx
// auth_request, ingress-nginx auth-url, Traefik ForwardAuth, Caddy forward_auth). 200 with the
// identity headers for a valid session, 401 otherwise. The front proxy, not this route, decides
// which paths need a session: the original URI it reports is never used to grant access.
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import type { Sessions } from '../session/index.js'
import { sessionIdentity } from '../session/session.js'
import type { IdentityIssuer } from '../identity/issuer.js'
import { safeNextPath } from '../auth/next-url.js'
import { isBrowserNavigation } from './access.js'

export interface ForwardAuthDeps {
  sessions: Sessions
  issuer: IdentityIssuer
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
      request.accessDecision = 'forward-auth'
      return await reply.code(200).headers(await deps.issuer.headersFor(sessionIdentity(session), session)).send()
    }
    request.accessDecision = 'forward-auth-refused'
    if (checked.reason !== 'absent') request.log.info({ reason: checked.reason }, 'session cookie refused')
    const answer = unauthenticatedAnswer(request.headers, request.method, request.query.redirect === 'true')
    if (answer.status === 302) return await reply.redirect(answer.location, 302)
    return await reply.code(401).send({ error: 'unauthenticated' })
  }

  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: FORWARD_AUTH_PATH, exposeHeadRoute: false, handler: check })
}
