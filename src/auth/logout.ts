// GET/POST /logout: end the gateway session, server-side too, so that a copy of the cookie stops
// working (Sessions.end). OIDC sessions may continue at the IdP's end-session endpoint (see
// auth/oidc); everything else lands on the login page, which then says "You have signed out"
// (/login?signed_out=1: a fixed notice, so a crafted link to it can say nothing else).
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import type { Sessions } from '../session/index.js'
import type { SessionPayload } from '../session/session.js'
import type { LogoutGate } from './logout-gate.js'
import { auditRequest } from '../ops/audit.js'

export const SIGNED_OUT_LOCATION = '/login?signed_out=1'

export interface LogoutDeps {
  sessions: Sessions
  /** Where an ended session of this kind goes next (the IdP's end-session URL), if anywhere special. */
  endSessionRedirect?: (session: SessionPayload, request: FastifyRequest) => Promise<string | undefined>
  /** Asks first when the request may come from another site (logout CSRF). */
  gate: LogoutGate
}

export const logoutRoutes: FastifyPluginAsync<LogoutDeps> = async (app, deps) => {
  const logout = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    if (!deps.gate.allows(request)) return deps.gate.ask(request, reply)

    const checked = deps.sessions.check(request)
    // A session that cannot be vouched for now (the database failing) is still ended.
    const session = 'session' in checked ? checked.session : undefined
    // The cookie is deleted all the same; the log says why there was no session to end.
    if (!checked.ok && checked.reason !== 'absent') request.log.info({ reason: checked.reason }, 'session cookie refused')
    await deps.sessions.end(request, session)
    if (session !== undefined) auditRequest(request, { audit: 'sign-out', user: session.u, by: 'user', method: session.m })
    const target = session !== undefined && deps.endSessionRedirect !== undefined ? await deps.endSessionRedirect(session, request) : undefined
    return await reply.redirect(target ?? SIGNED_OUT_LOCATION, 303)
  }
  app.get('/logout', logout)
  app.post('/logout', { bodyLimit: 16 * 1024 }, logout)
}
