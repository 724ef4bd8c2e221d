// IdP-initiated logout: the IdP tells the gateway that one of its sessions ended, and the gateway
// sessions it opened end too, on every replica (the session records are ended; other instances
// refuse them at their next revocation refresh, and open WebSockets and streams are closed then).
// - POST /auth/oidc/backchannel-logout (Back-Channel Logout 1.0): server to server, a signed
//   logout token (logout-token.ts). Forged or replayed tokens are the threat: anything that fails a
//   check answers 400 and ends nothing. No cookie has any effect here, so no CSRF check is needed.
// - GET /auth/oidc/frontchannel-logout?iss=&sid= (Front-Channel Logout 1.0): the IdP's logout page
//   loads it in an iframe. Nothing is signed: `iss` must be the provider's and `sid` an IdP session
//   the gateway knows, which only the IdP (and the user's own ID token) knows. Session cookies are
//   SameSite=Lax, so a cross-site iframe may not send one: the sessions are found by `sid`.
//   Some IdPs (LemonLDAP::NG) put no `sid` in ID tokens and send the user's subject as `sid`: a
//   `sid` no session recorded is then matched against the subject, but only for that subject's
//   sessions from this issuer whose ID token had no `sid` (so with an IdP that sends sids a subject
//   never works). The cost, with such an IdP: whoever knows a subject can sign that user out here.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { UserRepository } from '../../db/users.js'
import type { EndedSession } from '../../db/sessions.js'
import type { Sessions } from '../../session/index.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import { allowFramingBy } from '../../pages/security-headers.js'
import type { OidcProvider, OidcProviders } from './providers.js'
import { checkLogoutToken, remoteKeys } from './logout-token.js'
import { decodeJwt, type JWTVerifyGetKey } from 'jose'

export interface IdpLogoutDeps {
  /** undefined when AUTH_METHOD=local. */
  providers: OidcProviders | undefined
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
}

/** A logout token is a JWT of a few hundred bytes to a few KB: anything larger is not one. */
const BODY_LIMIT = 8 * 1024

const FRONTCHANNEL_PAGE = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><p>Signed out of the gateway.</p></body></html>\n'

export const idpLogoutRoutes: FastifyPluginAsync<IdpLogoutDeps> = async (app, deps) => {
  const { providers, users, sessions, metrics } = deps
  /** Each provider's signing keys, by id (refetched when its discovered jwks_uri changes). */
  const keysOf = new Map<string, { uri: string, get: JWTVerifyGetKey }>()
  type Idp = { provider: OidcProvider, issuer: string, jwksUri: string, algorithms: string[] | undefined }
  /**
   * The configured provider whose discovered issuer is `iss`, with its keys; undefined when none is
   * (or SSO is off). A provider not discovered yet gets one more try first.
   */
  const providerOf = async (iss: string): Promise<Idp | { problem: string }> => {
    if (providers === undefined) return { problem: 'SSO is not configured' }
    // The only provider checks every token itself (a wrong iss is refused by the verification); of
    // several, the one whose discovered issuer it is, once those not discovered yet have had a try.
    let provider = providers.named ? providers.byIssuer(iss) : providers.first!
    if (provider === undefined) {
      await Promise.all(providers.list.filter((p) => !p.client.ready).map(async (p) => await p.client.ensureReady()))
      provider = providers.byIssuer(iss)
    }
    if (provider === undefined) {
      const undiscovered = providers.list.filter((p) => !p.client.ready).map((p) => p.config.id)
      return { problem: `iss is not the issuer of a configured provider${undiscovered.length > 0 ? ` (not discovered yet: ${undiscovered.join(', ')})` : ''}` }
    }
    if (!(await provider.client.ensureReady())) return { problem: `the provider is not discovered (${provider.client.problem() ?? 'unknown'})` }
    const metadata = provider.client.serverMetadata!
    return { provider, issuer: metadata.issuer, jwksUri: metadata.jwks_uri!, algorithms: metadata.id_token_signing_alg_values_supported }
  }
  const keysFor = (idp: Idp): JWTVerifyGetKey => {
    let keys = keysOf.get(idp.provider.config.id)
    if (keys?.uri !== idp.jwksUri) {
      keys = { uri: idp.jwksUri, get: remoteKeys(idp.jwksUri, idp.provider.config.timeout * 1000) }
      keysOf.set(idp.provider.config.id, keys)
    }
    return keys.get
  }

  const providerField = (provider: OidcProvider): { provider?: string } => providers?.named === true ? { provider: provider.config.id } : {}

  /** One audit line per user whose sessions ended. */
  const audit = async (request: FastifyRequest, ended: EndedSession[], by: 'idp-backchannel' | 'idp-frontchannel'): Promise<void> => {
    const perUser = new Map<number, number>()
    for (const { userId } of ended) perUser.set(userId, (perUser.get(userId) ?? 0) + 1)
    for (const [userId, count] of perUser) {
      const user = await users.findById(userId).catch(() => undefined)
      auditRequest(request, { audit: 'sessions-ended', user: user?.username ?? `#${userId}`, by, method: 'oidc', reason: 'idp-logout', sessions: count })
    }
  }

  const refuseBackchannel = (request: FastifyRequest, reply: FastifyReply, reason: string): FastifyReply => {
    metrics.idpLogout('back', 'refused')
    request.log.warn({ reason }, 'back-channel logout refused')
    return reply.code(400).send({ error: 'invalid_request' })
  }

  app.post('/auth/oidc/backchannel-logout', {
    bodyLimit: BODY_LIMIT,
    // Too large, an unknown content type, a body that does not parse: the same 400 as a bad token.
    errorHandler: (error, request, reply) => { refuseBackchannel(request, reply, `unreadable request: ${error.message}`) }
  }, async (request, reply) => {
    const type = request.headers['content-type'] ?? ''
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) return refuseBackchannel(request, reply, `content type ${JSON.stringify(type.slice(0, 100))}`)
    const jwt = (request.body as Record<string, unknown> | undefined)?.logout_token
    if (typeof jwt !== 'string' || jwt === '') return refuseBackchannel(request, reply, Array.isArray(jwt) ? 'logout_token given more than once' : 'no logout_token')
    // The token names its issuer; it is then verified against that provider only (its keys, its
    // client id as the audience), exactly as if it were the only one.
    const idp = await providerOf(unverifiedIssuer(jwt) ?? '')
    if ('problem' in idp) return refuseBackchannel(request, reply, idp.problem)
    const checked = await checkLogoutToken(jwt, { issuer: idp.issuer, clientId: idp.provider.config.clientId, keys: keysFor(idp), advertisedAlgorithms: idp.algorithms, now: new Date() })
    if (!checked.ok) return refuseBackchannel(request, reply, checked.reason)
    const { token } = checked
    const target = token.sid !== undefined
      ? { issuer: token.issuer, sid: token.sid, ...(token.sub !== undefined ? { sub: token.sub } : {}) }
      : { issuer: token.issuer, sub: token.sub! }
    let result: Awaited<ReturnType<Sessions['endForLogoutToken']>>
    try {
      result = await sessions.endForLogoutToken(token, target)
    } catch (err) {
      // Nothing was recorded (one transaction): the IdP may send the same token again.
      metrics.idpLogout('back', 'refused')
      request.log.error({ err: (err as Error).message }, 'back-channel logout could not be applied (database)')
      return await reply.code(400).send({ error: 'server_error' })
    }
    if (result.replayed) return refuseBackchannel(request, reply, 'jti already used')
    metrics.idpLogout('back', 'accepted', result.ended.length)
    request.log.info({ sessions: result.ended.length, bySid: token.sid !== undefined, ...providerField(idp.provider) }, 'back-channel logout: IdP session ended')
    await audit(request, result.ended, 'idp-backchannel')
    return await reply.code(200).header('cache-control', 'no-store').send()
  })

  app.get<{ Querystring: Record<string, unknown> }>('/auth/oidc/frontchannel-logout', async (request, reply) => {
    const refuse = (reason: string): FastifyReply => {
      metrics.idpLogout('front', 'refused')
      request.log.warn({ reason }, 'front-channel logout refused')
      return reply.code(400).send({ error: 'invalid_request' })
    }
    const { iss, sid } = request.query
    if (typeof iss !== 'string' || typeof sid !== 'string' || iss === '' || sid === '' || sid.length > 1024) return refuse('iss and sid are required, once each')
    const idp = await providerOf(iss)
    if ('problem' in idp) return refuse(idp.problem)
    if (iss !== idp.issuer) return refuse('iss is not the provider\'s issuer')
    // Read before anything ends (an ended session no longer checks out).
    const own = sessions.check(request)
    let known: string[]
    let ended: EndedSession[]
    let bySubject = false
    try {
      known = await sessions.idsOfIdpSession(idp.issuer, sid)
      if (known.length === 0) {
        known = await sessions.idsOfSidlessSessionsOfSubject(idp.issuer, sid)
        if (known.length === 0) return refuse('no session of this sid')
        bySubject = true
      }
      ended = await sessions.endIdpSessions(bySubject ? { issuer: idp.issuer, sub: sid, withoutSid: true } : { issuer: idp.issuer, sid })
    } catch (err) {
      metrics.idpLogout('front', 'refused')
      request.log.error({ err: (err as Error).message }, 'front-channel logout could not be applied (database)')
      return await reply.code(400).send({ error: 'server_error' })
    }
    // The browser's own cookie goes too, when it came (a same-site or first-party frame sends it).
    if (own.ok && known.includes(own.session.sid)) request.session.delete()
    metrics.idpLogout('front', 'accepted', ended.length)
    request.log.info({ sessions: ended.length, bySubject, ...providerField(idp.provider) }, 'front-channel logout: IdP session ended')
    await audit(request, ended, 'idp-frontchannel')
    allowFramingBy(reply, new URL(idp.issuer).origin)
    return await reply.code(200).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(FRONTCHANNEL_PAGE)
  })

  // Back-channel: POST only; front-channel: GET only. Never proxied upstream.
  app.route({ method: ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: '/auth/oidc/backchannel-logout', handler: async (_request, reply) => await reply.code(405).header('allow', 'POST').send({ error: 'method_not_allowed' }) })
  app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: '/auth/oidc/frontchannel-logout', handler: async (_request, reply) => await reply.code(405).header('allow', 'GET, HEAD').send({ error: 'method_not_allowed' }) })
}

/** The `iss` of a JWT, read before anything is verified: only to choose whose keys verify it. */
function unverifiedIssuer (jwt: string): string | undefined {
  try {
    const { iss } = decodeJwt(jwt)
    return typeof iss === 'string' && iss !== '' ? iss : undefined
  } catch {
    return undefined
  }
}
