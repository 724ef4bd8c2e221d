// The login page as a reply, for this configuration: what GET/POST /login answer, and what a
// single sign-on start answers when the provider is down. Shared by the local and the OIDC routes,
// so that neither route module depends on the other.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config/index.js'
import type { Sessions } from '../session/index.js'
import { brandOf, logoImgSources } from './layout.js'
import { loginPage, type SsoButton } from './login.js'
import { allowOwnScripts } from './security-headers.js'
import { passkeyRelyingParty } from '../auth/passkeys/availability.js'

/** What the login page needs to know of each SSO provider (src/auth/oidc/providers.ts). */
export interface SsoProviderStatus {
  config: { id: string, buttonText: string }
  client: { unavailable: boolean }
}

export type LoginRenderer = (request: FastifyRequest, reply: FastifyReply, status: number, next: string,
  extra?: { error?: string, notice?: string, username?: string }) => FastifyReply

/**
 * The login page for this configuration, with at most one message (texts: MESSAGES in login.ts):
 * one SSO button per provider, in OIDC_PROVIDERS order, each saying when its provider is unavailable.
 */
export function loginRenderer (config: Config, sessions: Pick<Sessions, 'csrfToken'>, providers: { list: readonly SsoProviderStatus[] } | undefined): LoginRenderer {
  const brand = brandOf(config)
  // One provider without OIDC_PROVIDERS: its button starts /login/oidc without naming it, as always.
  const sso = (): SsoButton[] | undefined => providers?.list.map(({ config: p, client }) => ({
    id: config.multipleProviders ? p.id : undefined,
    text: p.buttonText,
    // One provider down with others up: its button says so. The only provider's says so when clicked.
    unavailable: config.multipleProviders && client.unavailable
  }))
  const imgSources = logoImgSources(config)
  return (request, reply, status, next, extra = {}) => {
    // Passkeys where this request can have a relying party (PUBLIC_URL, or localhost in development).
    const passkey = passkeyRelyingParty(config, request) !== undefined
    if (passkey) allowOwnScripts(reply, imgSources)
    return reply.code(status).type('text/html; charset=utf-8').send(loginPage({
      ...brand,
      next,
      csrfToken: sessions.csrfToken(request, reply),
      showLocalForm: config.authMethod !== 'oidc',
      askPassword: config.localAuth === 'password',
      sso: sso(),
      passkey,
      ...extra
    }))
  }
}
