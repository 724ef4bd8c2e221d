// The gate in front of GET and POST /logout, against logout CSRF: a link, an image or a form on
// another site must not sign the user out (nor, for SSO, send them on to the IdP's end-session
// endpoint). Such a request gets the "Sign out?" page, whose form carries the gateway's CSRF token,
// and changes nothing. The application's own Logout link and form still sign out in one click.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Sessions } from '../session/index.js'
import type { Brand } from '../pages/layout.js'
import { logoutConfirmationPage } from '../pages/logout.js'
import { setPageSecurityHeaders } from '../pages/security-headers.js'
import { gatewayOrigin, requestSite, type RequestSite } from './cross-site.js'

/**
 * Whether a logout request may sign out at once (else: ask). A GET signs out unless it may come
 * from another site: a same-origin link, and a client that says nothing (curl, old browsers), keep
 * working. A POST needs proof: it comes from the gateway's own origin, or it carries a valid CSRF
 * token (the confirmation page's form). A token posted from another site is refused even so: with
 * cookies that are not `__Host-` (plain http) a sibling subdomain could have planted a CSRF cookie
 * to go with a token of its own.
 */
export function mayLogOutAtOnce (method: string, site: RequestSite, csrfTokenValid: boolean): boolean {
  if (method === 'GET' || method === 'HEAD') return site !== 'cross-site'
  return site === 'same-origin' || (site === 'unknown' && csrfTokenValid)
}

export interface LogoutGateOptions {
  sessions: Sessions
  /** PUBLIC_URL: the gateway's origin; unset, the request's own (see cross-site.ts). */
  publicUrl: URL | undefined
  brand: Brand
  /** The pages' img-src additions (a LOGO_URL on another origin). */
  imgSources: string[]
}

/**
 * The confirmation form's sign-out may go on to the IdP: its end-session endpoint, whatever hosts
 * that redirects through, and OIDC_POST_LOGOUT_REDIRECT_URI. Browsers check form-action on every
 * redirect after a form, so no list of origins would be sure to hold; the page's one form is fixed
 * and it runs no script, so a narrower form-action would protect nothing there.
 */
const CONFIRMATION_FORM_ACTIONS = ['*']

export class LogoutGate {
  constructor (private readonly options: LogoutGateOptions) {}

  /** Whether this request may sign out now; if not, answer it with {@link ask}. */
  allows (request: FastifyRequest): boolean {
    const site = this.siteOf(request)
    const body = request.body
    const token = typeof body === 'object' && body !== null ? (body as { csrf_token?: unknown }).csrf_token : undefined
    return mayLogOutAtOnce(request.method, site, token !== undefined && this.options.sessions.isCsrfValid(request, token))
  }

  /** The "Sign out?" page: 200 for a GET (a question), 403 for a POST that was not done. */
  ask (request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const { sessions, brand, imgSources } = this.options
    request.log.info({ method: request.method, site: this.siteOf(request) }, 'sign-out not done: it may come from another site, asking to confirm')
    setPageSecurityHeaders(reply, CONFIRMATION_FORM_ACTIONS, imgSources)
    return reply.code(request.method === 'GET' || request.method === 'HEAD' ? 200 : 403).type('text/html; charset=utf-8')
      .send(logoutConfirmationPage({ ...brand, csrfToken: sessions.csrfToken(request, reply) }))
  }

  private siteOf (request: FastifyRequest): RequestSite {
    return requestSite(request.headers, gatewayOrigin(this.options.publicUrl, { protocol: request.protocol, host: request.host }))
  }
}
