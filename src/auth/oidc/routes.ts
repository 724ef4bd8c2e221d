// GET /login/oidc and GET /auth/oidc/callback, and where an OIDC session goes at logout.
// Every failure ends on a deliberate page (FAILURES in errors.ts) with no session, the flow's
// transaction cookie cleared, and the reason logged.
import { randomBytes } from 'node:crypto'
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import { AuthorizationResponseError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client'
import type { Config } from '../../config/index.js'
import type { UserRepository } from '../../db/users.js'
import type { Sessions } from '../../session/index.js'
import type { SessionPayload } from '../../session/session.js'
import { deriveKeys } from '../../session/keys.js'
import { identityFitsSession, SessionTooLargeError } from '../../session/budget.js'
import type { Metrics, OidcRateLimitedRoute } from '../../ops/metrics.js'
import type { Clock } from '../../clock.js'
import { clientAddressKey } from '../../net/client-address.js'
import { RateLimiter } from '../../net/rate-limit.js'
import { auditRequest } from '../../ops/audit.js'
import { adminRuleFor } from './admin.js'
import { brandOf, messagePage } from '../../pages/layout.js'
import { MESSAGES } from '../../pages/login.js'
import { loginRenderer } from '../../pages/login-renderer.js'
import { safeNextPath } from '../next-url.js'
import { IdpResponseTooLargeError, IdpUnreachableError } from './client.js'
import type { OidcProvider, OidcProviders } from './providers.js'
import { groupsTooLargeMessage, mapClaims } from './claims.js'
import { upsertOidcUser } from './linking.js'
import { checkSignInAllowed } from '../../policy/sign-in-allow-list.js'
import { describeError, FAILURES, IdpRefusalError, OidcFailure } from './errors.js'
import { isDatabaseUnavailable } from '../../db/unavailable.js'
import { RETRY_AFTER_SECONDS } from '../../pages/unavailable.js'
import {
  flowsToEvict, isWellFormedState, newTransaction, openTransaction, sealTransaction, stateOfCookie,
  transactionCookieName, TRANSACTION_MAX_AGE, type PendingFlow
} from './transaction.js'

export interface OidcRouteDeps {
  config: Config
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
  /** This deployment's id (src/db/sessions.ts), mixed into the transaction cookie's key. */
  deploymentId: string
  /** undefined when AUTH_METHOD=local: the routes then say SSO is not enabled. */
  providers: OidcProviders | undefined
  /** What OIDC_RATE_LIMIT's windows are timed by. */
  clock: Clock
  /** Client addresses each rate limiter tracks at most (default OIDC_RATE_LIMIT_ADDRESSES). */
  rateLimitAddresses?: number
}

/**
 * Client addresses each of the two OIDC rate limiters (start, callback) tracks at most: well under
 * 2 MB each, whatever a flood from many addresses sends. Past it the oldest windows give way.
 */
export const OIDC_RATE_LIMIT_ADDRESSES = 10_000
const RATE_LIMIT_WINDOW_MS = 60_000

const now = (): number => Math.floor(Date.now() / 1000)

export const oidcRoutes: FastifyPluginAsync<OidcRouteDeps> = async (app, deps) => {
  const { config, users, sessions, metrics, providers } = deps
  // Bound to this deployment like the session cookie (keys.ts); current key first, then the previous ones.
  const keys = deriveKeys(config.secretKeys, deps.deploymentId, 'oidc-transaction-v1')
  const prefix = sessions.names.oidcPrefix
  const cookieAttributes = { path: '/', httpOnly: true, secure: config.sessionCookieSecure, sameSite: 'lax' as const }

  const renderLogin = loginRenderer(config, sessions, deps.providers)

  // OIDC_RATE_LIMIT, per client address as the gateway sees it (TRUST_PROXY; IPv6 by /64): starts and
  // callbacks each on their own budget, so one sign-in spends one of each. In this process's memory:
  // each replica limits on its own, which bounds what reaches the IdP just as well.
  const limitOptions = { limit: config.oidcRateLimit, windowMs: RATE_LIMIT_WINDOW_MS, maxKeys: deps.rateLimitAddresses ?? OIDC_RATE_LIMIT_ADDRESSES }
  const limiters = config.oidcRateLimit > 0 ? { start: new RateLimiter(limitOptions), callback: new RateLimiter(limitOptions) } : undefined
  metrics.countOidcRateLimitAddresses((route) => limiters?.[route].size ?? 0)

  /** An onRequest hook: past the limit, 429 with Retry-After (a page for a browser, JSON otherwise). */
  const rateLimited = (route: OidcRateLimitedRoute) => async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (limiters === undefined) return undefined
    const decision = limiters[route].hit(clientAddressKey(request.ip), deps.clock.now())
    if (decision.allowed) return undefined
    metrics.oidcRateLimited(route)
    // Once per address and window: a flood is one line, not one per request.
    if (decision.firstRefusal) {
      request.log.info({ ip: request.ip, route: request.url.split('?', 1)[0], limit: config.oidcRateLimit, retryAfter: decision.retryAfter },
        'OIDC_RATE_LIMIT reached by a client address: its SSO requests are refused (429) until its minute ends')
    }
    const message = `Too many single sign-on attempts came from your network address in the last minute. Try again in ${decision.retryAfter} second${decision.retryAfter === 1 ? '' : 's'}.`
    void reply.code(429).header('retry-after', String(decision.retryAfter)).header('cache-control', 'no-store')
    if (request.headers.accept?.includes('text/html') === true) {
      // The callback's own URL carries the authorization code: the way back is the login page.
      const link = route === 'start' ? { href: request.url, text: 'Try again' } : { href: '/login', text: 'Back to sign-in' }
      return await reply.type('text/html; charset=utf-8').send(messagePage({ ...brandOf(config), title: 'Too many sign-in attempts', message, link }))
    }
    return await reply.send({ error: 'too_many_requests', message })
  }

  const failurePage = (request: FastifyRequest, reply: FastifyReply, failure: OidcFailure, next: string, provider?: OidcProvider): FastifyReply => {
    const page = FAILURES[failure.code]
    metrics.loginFailure('oidc', failure.code)
    auditRequest(request, { audit: 'sign-in-failed', user: failure.username, by: 'user', method: 'oidc', reason: failure.code, ...providerField(provider) })
    const level = failure.code === 'provider-unavailable' || failure.code === 'database-unavailable' || failure.code === 'verification-failed' ? 'warn' : 'info'
    request.log[level]({ code: failure.code, reason: failure.reason, ...providerField(provider) }, 'OIDC sign-in failed')
    // The provider being down is a moment, not a dead end: the login page itself, saying so, with
    // the SSO button to try again and (AUTH_METHOD=both) the local form to get in meanwhile.
    if (failure.code === 'provider-unavailable') return renderLogin(request, reply, page.status, next, { error: MESSAGES.providerUnavailable })
    // So is the gateway's database failing (after the IdP signed the user in: the flow starts over).
    if (failure.code === 'database-unavailable') {
      reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      return renderLogin(request, reply, page.status, next, { error: MESSAGES.databaseUnavailable })
    }
    return reply.code(page.status).type('text/html; charset=utf-8').send(messagePage({
      ...brandOf(config),
      title: page.title,
      message: `${page.message}${failure.detail !== undefined ? ' ' + failure.detail : ''} (Error code: ${failure.code})`,
      link: failure.code === 'sso-disabled' || failure.code === 'unknown-provider'
        ? { href: '/login', text: 'Back to sign-in' }
        : failure.code === 'not-allowed' ? signOutAtProvider(provider) : { href: '/login?next=' + encodeURIComponent(next), text: 'Try again' }
    }))
  }

  /** Which provider a log or audit line is about, when there are several to tell apart. */
  const providerField = (provider: OidcProvider | undefined): { provider?: string } =>
    providers?.named === true && provider !== undefined ? { provider: provider.config.id } : {}

  /** A refused account can only be changed at the provider: its end-session endpoint (client_id, no token), else the login page. */
  const signOutAtProvider = (provider: OidcProvider | undefined): { href: string, text: string } => {
    const url = provider?.client.endSessionUrl({ idToken: undefined, postLogoutRedirectUri: provider.config.postLogoutRedirectUri, state: randomBytes(16).toString('base64url') })
    return url !== undefined ? { href: url.href, text: 'Sign out at the provider' } : { href: '/login', text: 'Back to sign-in' }
  }

  /** Groups are never cut to fit the session cookie (an upstream may deny by group): refuse instead. */
  const tooLargeForSession = (err: SessionTooLargeError, provider: OidcProvider): OidcFailure =>
    new OidcFailure('groups-too-large', err.message, groupsTooLargeMessage(provider.config.groupsClaim))

  app.get<{ Querystring: { next?: string, provider?: unknown } }>('/login/oidc', { onRequest: rateLimited('start') }, async (request, reply) => {
    const next = safeNextPath(request.query.next)
    if (providers === undefined || providers.first === undefined) return failurePage(request, reply, new OidcFailure('sso-disabled', 'AUTH_METHOD=local'), next)
    const requested = request.query.provider
    // Without `provider`: the first (a bookmark or a link from before there were several).
    const provider = requested === undefined ? providers.first : typeof requested === 'string' ? providers.byId(requested) : undefined
    if (provider === undefined) {
      return failurePage(request, reply, new OidcFailure('unknown-provider', typeof requested === 'string' ? `provider ${JSON.stringify(requested.slice(0, 40))} is not configured` : 'provider given more than once'), next)
    }
    if (sessions.check(request).ok) return await reply.redirect(next, 302)
    const { client } = provider
    if (!(await client.ensureReady())) return failurePage(request, reply, new OidcFailure('provider-unavailable', client.problem() ?? 'not ready'), next, provider)

    const at = now()
    const tx = newTransaction(next, at, providers.named ? provider.config.id : '')
    const name = transactionCookieName(prefix, tx.state)
    const sealed = sealTransaction(keys[0]!, tx)
    // Bound the flows one browser keeps open (each tab is one): the oldest give way.
    const pending: PendingFlow[] = []
    for (const [cookie, value] of Object.entries(request.cookies)) {
      const state = stateOfCookie(prefix, cookie)
      if (state === undefined || value === undefined) continue
      pending.push({ name: cookie, createdAt: openTransaction(keys, state, value, at)?.createdAt, size: cookie.length + 1 + value.length })
    }
    for (const evicted of flowsToEvict(pending, name.length + 1 + sealed.length)) reply.clearCookie(evicted, cookieAttributes)
    reply.setCookie(name, sealed, { ...cookieAttributes, maxAge: TRANSACTION_MAX_AGE })
    return await reply.redirect((await client.authorizationUrl(tx)).href, 302)
  })

  /**
   * Mix-up defence (RFC 9207, and RFC 9700 §4.4): the flow's provider only. An authorization
   * response that names another configured provider as its issuer is refused before its code goes
   * anywhere, and said so in the log; openid-client then checks `iss` (required when the provider
   * advertises it) and the ID token's issuer against this provider's.
   */
  const checkResponseIssuer = (params: URLSearchParams, provider: OidcProvider): void => {
    const iss = params.get('iss')
    if (iss === null || iss === provider.client.issuer) return
    const other = providers?.byIssuer(iss)
    // Any other issuer is refused by openid-client, with its own reason.
    if (other === undefined) return
    throw new OidcFailure('verification-failed', `mix-up refused: the authorization response names provider ${other.config.id} as its issuer (iss), but the flow was started at provider ${provider.config.id}; its code was sent nowhere`)
  }

  app.get('/auth/oidc/callback', { onRequest: rateLimited('callback') }, async (request, reply) => {
    const params = new URLSearchParams(request.url.split('?')[1] ?? '')
    if (providers === undefined || providers.first === undefined) return failurePage(request, reply, new OidcFailure('sso-disabled', 'AUTH_METHOD=local'), '/')
    const state = params.get('state')
    if (!isWellFormedState(state)) {
      return failurePage(request, reply, new OidcFailure('transaction-missing', state === null ? 'callback without state' : 'malformed state'), '/')
    }
    // One attempt per flow: its cookie goes whatever happens next.
    const name = transactionCookieName(prefix, state)
    const sealed = request.cookies[name]
    if (sealed !== undefined) reply.clearCookie(name, cookieAttributes)
    const tx = openTransaction(keys, state, sealed, now())
    if (tx === undefined) {
      const reason = sealed === undefined ? 'no transaction cookie for this state (expired, used, another browser, or a state the gateway never issued)' : 'transaction cookie unreadable or expired'
      return failurePage(request, reply, new OidcFailure('transaction-missing', reason), '/')
    }
    // The flow names its provider; one removed from OIDC_PROVIDERS since (a restart mid-flow) is gone.
    const provider = tx.provider === '' ? providers.first : providers.byId(tx.provider)
    if (provider === undefined) return failurePage(request, reply, new OidcFailure('unknown-provider', `the flow's provider ${tx.provider} is no longer configured`), tx.next)
    const { client, config: oidc } = provider
    try {
      if (!(await client.ensureReady())) throw new OidcFailure('provider-unavailable', client.problem() ?? 'not ready')
      checkResponseIssuer(params, provider)
      const result = await client.signIn(params, tx).catch((err: unknown) => { throw classify(err) })

      const mapped = mapClaims(result.claims, oidc)
      if (!mapped.ok) throw new OidcFailure(mapped.code, `claim mapping: ${mapped.reason}`, mapped.message)
      const identity = mapped.identity
      // ALLOWED_*: before any row is written or changed, so a refused person leaves no trace but the log.
      if (!checkSignInAllowed(oidc.signInAllowList, identity).ok) {
        throw new OidcFailure('not-allowed', 'not in ALLOWED_EMAIL_DOMAINS, ALLOWED_EMAILS or ALLOWED_GROUPS', undefined, identity.username)
      }
      // Checked before any row is written; sessions.start checks again with the row's values.
      const fit = identityFitsSession(sessions.names.session, identity)
      if (!fit.fits) throw tooLargeForSession(new SessionTooLargeError(fit.bytes, fit.budget, fit.groups), provider)
      const upsert = await upsertOidcUser(users, { issuer: result.issuer, sub: result.sub }, identity,
        { allowSelfRegister: oidc.allowSelfRegister, usernameIsEmail: oidc.usernameClaim === oidc.emailClaim },
        { adminGroup: oidc.adminGroup, adminEmails: oidc.adminEmails, adminUsernames: config.adminUsernames })
      if (!upsert.ok) throw new OidcFailure(upsert.reason, `${upsert.reason} (username ${identity.username})`, undefined, identity.username)

      const { user } = upsert
      try {
        // The refresh token is kept (encrypted, server-side) only when re-validation is on.
        const refreshToken = oidc.refreshInterval > 0 ? result.refreshToken : undefined
        await sessions.start(request, { ...user, groups: identity.groups, emailVerified: identity.emailVerified === true }, 'oidc',
          { idToken: result.idToken, refreshToken, idpSession: { issuer: result.issuer, sid: result.sid }, ...(providers.named ? { provider: oidc.id } : {}) })
      } catch (err) {
        throw err instanceof SessionTooLargeError ? tooLargeForSession(err, provider) : err
      }
      metrics.login('oidc')
      const audit = { user: user.username, method: 'oidc', ...providerField(provider) } as const
      if (upsert.outcome === 'created') auditRequest(request, { audit: 'user-created', ...audit, by: 'user', admin: user.isAdmin })
      if (upsert.outcome === 'linked') auditRequest(request, { audit: 'sso-linked', ...audit, by: 'user' })
      if (user.isAdmin !== upsert.wasAdmin) {
        const mapping = { adminGroup: oidc.adminGroup, adminEmails: oidc.adminEmails, adminUsernames: config.adminUsernames }
        // Granted: by the rule that matched. Removed: a group or email mapping that no longer matches.
        const by = user.isAdmin ? adminRuleFor({ ...identity, username: user.username }, mapping) ?? 'admin-usernames' : 'oidc-mapping'
        auditRequest(request, { audit: user.isAdmin ? 'admin-granted' : 'admin-revoked', ...audit, by })
      }
      auditRequest(request, { audit: 'sign-in', ...audit, by: 'user', admin: user.isAdmin })
      return await reply.redirect(tx.next, 302)
    } catch (err) {
      if (err instanceof OidcFailure) return failurePage(request, reply, err, tx.next, provider)
      if (isDatabaseUnavailable(err)) return failurePage(request, reply, new OidcFailure('database-unavailable', (err as Error).message), tx.next, provider)
      throw err
    }
  })

  // Both routes are GET only (the gateway asks for response_mode=query); never proxied upstream.
  for (const url of ['/login/oidc', '/auth/oidc/callback']) {
    app.route({
      method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url,
      handler: async (_request, reply) => await reply.code(405).header('allow', 'GET, HEAD').send({ error: 'method_not_allowed' })
    })
  }
}

/** Which page an error from the protocol exchange deserves; the reason goes to the log. */
export function classify (err: unknown): OidcFailure {
  const reason = describeError(err)
  // openid-client wraps what our fetch throws: an oversized answer is the provider's error.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof IdpResponseTooLargeError) return new OidcFailure('provider-error', reason)
  }
  if (err instanceof IdpUnreachableError) return new OidcFailure('provider-unavailable', reason)
  if (err instanceof AuthorizationResponseError) return new OidcFailure(err.error === 'access_denied' ? 'access-denied' : 'provider-error', reason)
  // A 401 challenge: the token endpoint refused the client's credentials, or userinfo the access token.
  if (err instanceof ResponseBodyError || err instanceof WWWAuthenticateChallengeError || err instanceof IdpRefusalError) return new OidcFailure('provider-error', reason)
  const code = (err as { code?: unknown }).code
  if ((err instanceof TypeError && err.message === 'fetch failed') || code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') {
    return new OidcFailure('provider-unavailable', reason)
  }
  return new OidcFailure('verification-failed', reason)
}

/** For logout: an OIDC session continues at the end-session endpoint of the IdP that opened it, when it has one. */
export function oidcEndSession (providers: OidcProviders | undefined): (session: SessionPayload, request: FastifyRequest) => Promise<string | undefined> {
  return async (session) => {
    const provider = providers?.forSession(session)
    if (provider === undefined) return undefined
    // `state` is echoed to the post-logout page; the gateway keeps nothing to compare it with
    // because that page (usually /login) acts on nothing it carries.
    return provider.client.endSessionUrl({ idToken: session.idt, postLogoutRedirectUri: provider.config.postLogoutRedirectUri, state: randomBytes(16).toString('base64url') })?.href
  }
}
