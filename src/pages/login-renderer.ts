// The login page as a reply, for this configuration: what GET/POST /login answer, and what a
// single sign-on start answers when the provider is down. Shared by the local and the OIDC routes,
// so that neither route module depends on the other.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config/index.js'
import type { Sessions } from '../session/index.js'
import { brandOf } from './layout.js'
import { loginPage } from './login.js'

export type LoginRenderer = (request: FastifyRequest, reply: FastifyReply, status: number, next: string,
  extra?: { error?: string, notice?: string, username?: string }) => FastifyReply

/** The login page for this configuration, with at most one message (texts: MESSAGES in login.ts). */
export function loginRenderer (config: Config, sessions: Pick<Sessions, 'csrfToken'>): LoginRenderer {
  const brand = brandOf(config)
  const sso = config.oidc !== undefined ? { buttonText: config.oidc.buttonText } : undefined
  return (request, reply, status, next, extra = {}) =>
    reply.code(status).type('text/html; charset=utf-8').send(loginPage({
      ...brand,
      next,
      csrfToken: sessions.csrfToken(request, reply),
      showLocalForm: config.authMethod !== 'oidc',
      askPassword: config.localAuth === 'password',
      sso,
      ...extra
    }))
}
