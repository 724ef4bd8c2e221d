// The composition root: config → database → sessions → gateway routes → proxy. Nothing else lives here.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import type { Config } from './config/index.js'
import type { Db } from './db/index.js'
import { UserRepository } from './db/users.js'
import { readDeploymentId, SessionRepository } from './db/sessions.js'
import { Sessions } from './session/index.js'
import { RevocationList } from './session/revocations.js'
import { SessionIdentities } from './session/identities.js'
import { RefreshTokenCipher } from './session/refresh-token-cipher.js'
import { SessionRevalidator } from './auth/oidc/revalidation.js'
import { SESSION_CLEANUP_INTERVAL_MS, startSessionCleanup } from './session/cleanup.js'
import { localLoginRoutes, throttleAttempts } from './auth/local/routes.js'
import { LoginThrottle } from './auth/local/throttle.js'
import { LoginThrottleStore } from './db/login-throttle.js'
import { SecondFactorRepository } from './db/second-factors.js'
import { SecondFactors } from './auth/mfa/service.js'
import { loadDataKey, type DataKeyOutcome } from './auth/mfa/data-key.js'
import { accountRoutes } from './auth/mfa/account-routes.js'
import { passkeyRoutes } from './auth/passkeys/routes.js'
import { PasskeyRepository } from './db/passkeys.js'
import { logoutRoutes } from './auth/logout.js'
import { LogoutGate } from './auth/logout-gate.js'
import { OidcProviders } from './auth/oidc/providers.js'
import { oidcEndSession, oidcRoutes } from './auth/oidc/routes.js'
import { idpLogoutRoutes } from './auth/oidc/idp-logout.js'
import { metricsListener, opsRoutes } from './ops/routes.js'
import { Metrics, type AccessDecision } from './ops/metrics.js'
import { proxyRoutes } from './proxy/index.js'
import { OpenConnections } from './proxy/open-connections.js'
import { OpenWebSockets } from './proxy/open-websockets.js'
import { WebSocketFlow } from './proxy/websocket-flow.js'
import { forwardAuthRoutes } from './proxy/forward-auth.js'
import { IdentityIssuer } from './identity/issuer.js'
import { AssertionSigner } from './identity/jwt.js'
import { jwksRoute } from './identity/jwks-route.js'
import { normalizeRequestTarget } from './proxy/access.js'
import { brandOf, logoImgSources, messagePage } from './pages/layout.js'
import { setPageSecurityHeaders } from './pages/security-headers.js'
import { staticRoutes } from './pages/static.js'
import { headerTimeoutServerOptions, logHeaderTimeouts } from './proxy/client-limits.js'
import { closeConnectionsOnShutdown } from './net/shutdown.js'
import { requestIdGenerator } from './net/request-id.js'
import { accessLogger, isInfoEnabled, requestLoggerFactory } from './logger.js'
import { systemClock, type Clock } from './clock.js'
import { isDatabaseUnavailable } from './db/unavailable.js'
import { DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS } from './pages/unavailable.js'
import { lazySchemaCompilers } from './schema-compilers.js'

/**
 * What {@link buildApp} builds a gateway from. The configuration and the database are the caller's:
 * buildApp neither reads the environment nor runs migrations, and closing the gateway does not close
 * the database.
 */
export interface AppOptions {
  /** The validated configuration, from `loadConfig` (src/config/index.ts). */
  config: Config
  /** An open database, migrated to the latest schema (`migrateToLatest`, src/db/migrate.ts). */
  db: Db
  /** Where requests go: UPSTREAM_URL, or the demo upstream's address in development. */
  upstream: URL
  /** A pino logger (see logger.ts); none: silent. */
  logger?: FastifyBaseLogger
  /** How often the revocation list is re-read (ms; default 5000). Tests shorten it. */
  revocationRefreshMs?: number
  /**
   * Where sessions (issue time, expiry), the sign-in throttle, the revocation list and the session
   * cleanup read the time. Default: the system clock; tests pass one they can move (test/support/clock.ts).
   */
  clock?: Clock
  /** Client addresses OIDC_RATE_LIMIT tracks per route at most (default 10,000). Tests lower it to show the bound. */
  oidcRateLimitAddresses?: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What the gateway did with this request, for the request-duration metric (ops/metrics.ts). */
    accessDecision: AccessDecision
  }
}

/** A built gateway, not listening yet: the caller chooses where (`app.listen`, `metricsApp?.listen`). */
export interface Gateway {
  /** The public listener: the gateway's own routes (/login, /logout, /_authgate/*) and the proxy. */
  app: FastifyInstance
  /** METRICS_PORT's listener (not listening yet: main.ts and the tests choose where); undefined without METRICS_PORT. */
  metricsApp: FastifyInstance | undefined
  /** The user table, as the CLI sees it: a change is applied to sessions at the next revocation refresh. */
  users: UserRepository
  /** The Prometheus metrics this gateway counts (served at /_authgate/metrics or on METRICS_PORT). */
  metrics: Metrics
  /** Proxied WebSockets' backpressure; read-only figures for tests and benchmarks. */
  webSocketFlow: Pick<WebSocketFlow, 'bufferedBytes'>
  /**
   * Stop the background work (OIDC discovery, revocation refresh, session cleanup) and close both
   * listeners, open streams and WebSockets within SHUTDOWN_GRACE_PERIOD. The database stays open.
   */
  close: () => Promise<void>
}

const INVALID_TARGET = '/_authgate/invalid-request-target'

/**
 * Build the gateway: sessions, the login and logout routes (local and OIDC), forward-auth, health,
 * readiness and metrics, and the proxy to `options.upstream` for everything else. Background work
 * starts here: the revocation list's refresh, the session-record cleanup, and (with OIDC) discovery,
 * which does not delay startup (local sign-in and sessions work meanwhile).
 *
 * @param options - the configuration, an open and migrated database, the upstream; see {@link AppOptions}.
 * @returns the gateway, not listening yet; call `close()` when done.
 * @throws Error when the database is not usable: not migrated, or without exactly one deployment id
 *   (src/db/sessions.ts), or unreachable for the revocation list's first read; with LOCAL_MFA on,
 *   when the second factors' data key is sealed under no configured SECRET_KEY (the message names
 *   the fix: src/auth/mfa/data-key.ts). Nothing is left listening then; the caller still owns (and
 *   closes) the database.
 *
 * @example
 * ```ts
 * const config = loadConfig(process.env)
 * const db = openDatabase(config.databaseUrl)
 * await migrateToLatest(db)
 * const gateway = await buildApp({ config, db, upstream: config.upstreamUrl! })
 * await gateway.app.listen({ port: config.port, host: config.host })
 * // ... on SIGTERM:
 * await gateway.close()
 * await db.close()
 * ```
 */
export async function buildApp (options: AppOptions): Promise<Gateway> {
  const { config, db, upstream } = options
  const clock = options.clock ?? systemClock
  const app = Fastify({
    ...(options.logger !== undefined ? { loggerInstance: options.logger } : { logger: false }),
    // The proxies' addresses (or true/false): X-Forwarded-* is believed only from a listed peer.
    trustProxy: config.trustProxy,
    // X-Request-Id only from TRUST_PROXY's peers, else a fresh one (net/request-id.ts).
    requestIdHeader: false,
    genReqId: requestIdGenerator(config.trustProxy),
    bodyLimit: 64 * 1024,
    // One normalised URL, decided before routing: the same one is access-checked and proxied.
    rewriteUrl: (req) => {
      const target = normalizeRequestTarget(req.url ?? '')
      return target === undefined ? INVALID_TARGET : target.path + target.search
    },
    return503OnClosing: true,
    // One access line per request (below) instead of Fastify's two: request logging was a third of
    // the gateway's CPU per proxied request (docs/PERFORMANCE.md).
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is made when a request logs something other than its access line (logger.ts).
    childLoggerFactory: requestLoggerFactory,
    routerOptions: { maxParamLength: 2048 },
    schemaController: lazySchemaCompilers,
    // Request headers must arrive in time (CLIENT_HEADER_TIMEOUT); bodies are watched per request (proxy/client-limits.ts).
    ...headerTimeoutServerOptions(config.clientLimits)
  })

  // A LOGO_URL on another origin must be allowed to load on every gateway page.
  const imgSources = logoImgSources(config)
  const brand = brandOf(config)
  const metrics = new Metrics()
  logHeaderTimeouts(app.server, app.log, metrics.clientsRefused)
  const webSockets = new OpenWebSockets()
  metrics.countWebSockets(() => webSockets.size)
  // close() finishes within SHUTDOWN_GRACE_PERIOD, open streams, long-polls and WebSockets included.
  closeConnectionsOnShutdown(app, { graceMs: config.shutdownGraceMs, webSockets })
  const users = new UserRepository(db)
  const sessionRecords = new SessionRepository(db)
  // Read once: every key of this instance is bound to the deployment (session/keys.ts).
  const deploymentId = await readDeploymentId(db)
  // The second factors' data key, read (made, re-sealed) before anything starts: a key no configured
  // SECRET_KEY opens stops the start here, with the fix in the message, rather than failing each
  // user's sign-in later (data-key.ts). Not read with LOCAL_MFA=off: nothing uses it then.
  const secondFactorRepository = new SecondFactorRepository(db)
  const secondFactorKey = config.localMfa === 'off' ? undefined : await loadDataKey(secondFactorRepository, config.secretKeys, deploymentId)
  if (secondFactorKey !== undefined && secondFactorKey.outcome !== 'opened') app.log.info({ outcome: secondFactorKey.outcome }, SECOND_FACTOR_KEY_LOG[secondFactorKey.outcome])
  // SSO identities changed by a re-validation with the IdP, read with the revocations (identities.ts).
  const identities = new SessionIdentities(sessionRecords, clock)
  const revocations = new RevocationList(users, sessionRecords, app.log, options.revocationRefreshMs, clock, identities, config.revocationMaxStaleness * 1000)
  await revocations.start()
  const passkeys = new PasskeyRepository(db)
  const sessionCleanup = startSessionCleanup(sessionRecords, app.log, SESSION_CLEANUP_INTERVAL_MS, clock, passkeys)
  const jwt = config.identityJwt
  // `aud` defaults to the upstream's origin: the one application these assertions are meant for.
  const assertions = jwt !== undefined ? await AssertionSigner.create({ privateKey: jwt.signingKey, issuer: jwt.issuer, audience: jwt.audience ?? upstream.origin }) : undefined
  const issuer = new IdentityIssuer(config.headerSigningSecret, assertions)
  const refreshTokens = new RefreshTokenCipher(config.secretKeys, deploymentId)
  // A session of a provider removed from OIDC_PROVIDERS since (or of any, once it is unset) is refused.
  const providerIds = new Set(config.multipleProviders ? config.oidcProviders.map((p) => p.id) : [])
  const sessions = new Sessions({ secretKeys: config.secretKeys, deploymentId, secure: config.sessionCookieSecure, maxAge: config.sessionMaxAge, providers: providerIds },
    { revocations, records: sessionRecords, refused: (reason) => { metrics.sessionRefused(reason) }, clock, identities, refreshTokens })
  // Open WebSockets and responses are re-checked whenever the revocation list changes: ended within one
  // refresh; and when a re-validation here changed a session's identity: closed at once.
  const connections = new OpenConnections(sessions, app.log)
  revocations.afterRefresh(() => { connections.sweep() })
  identities.onChange(() => { connections.sweep() })
  const webSocketFlow = new WebSocketFlow()
  // Discovery runs in the background: the gateway serves local sign-in and sessions meanwhile.
  // Each provider discovered on its own, in the background; SSO sessions follow the IdP that opened
  // them: re-validated with their refresh token, driven by their own requests.
  const providers = config.oidcProviders.length > 0
    ? new OidcProviders(config.oidcProviders, config.multipleProviders, {
      log: app.log,
      observe: (endpoint, outcome, seconds, provider) => { metrics.idpRequest(endpoint, outcome, seconds, provider) },
      revalidatorFor: ({ config: oidc, client }) => oidc.refreshInterval > 0
        ? new SessionRevalidator({ config, oidc, client, records: sessionRecords, users, cipher: refreshTokens, identities, revocations, metrics, log: config.multipleProviders ? app.log.child({ provider: oidc.id }) : app.log, clock })
        : undefined
    })
    : undefined
  providers?.start()
  // With AUTH_METHOD=oidc nobody can sign in without an IdP: not ready. With both, local still works.
  const oidcReadiness = providers?.readinessChecks(config.authMethod === 'oidc') ?? []
  const opsDeps = { db, metrics, revocations, readinessChecks: oidcReadiness, separateListener: config.metrics !== undefined }
  const metricsApp = config.metrics !== undefined ? metricsListener(opsDeps, options.logger) : undefined

  app.decorateRequest('accessDecision', 'gateway')
  // Every answer says which id it was logged under (the upstream got the same one).
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
  // Under the request's id, as request.log would write it; a request whose logger was muted (a client
  // that left, a body too slow: already logged) gets none.
  const accessLog = accessLogger(app.log)
  app.addHook('onResponse', (request, reply, done) => {
    const ms = reply.elapsedTime
    metrics.request(request.accessDecision, ms / 1000)
    // The path only: query strings can hold authorization codes and the application's tokens.
    if (isInfoEnabled(request.log)) accessLog.info({ reqId: request.id, method: request.method, path: request.url.split('?', 1)[0], status: reply.statusCode, ms: Math.round(ms) }, 'request')
    done()
  })

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // The database failing (unreachable, locked, full) is a moment, not a bug: 503 with Retry-After.
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error.message }, 'request failed: the database is unavailable')
      void reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      if (request.headers.accept?.includes('text/html') === true) {
        setPageSecurityHeaders(reply, [], imgSources)
        return reply.code(503).type('text/html; charset=utf-8').send(messagePage({ ...brand, ...DATABASE_UNAVAILABLE, link: { href: '/', text: 'Back' } }))
      }
      return reply.code(503).send({ error: 'database_unavailable', message: DATABASE_UNAVAILABLE.message })
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    // A client that hung up mid-answer (a proxied body is then aborted) is not the gateway's fault.
    const clientGone = reply.raw.destroyed || request.raw.destroyed
    if (status === 500 && clientGone) request.log.info({ err: error.message }, 'client closed the connection before the answer was complete')
    else if (status === 500) request.log.error({ err: error }, 'request failed')
    else request.log.info({ code: error.code, status }, error.message)
    const message = status === 500 ? 'Something went wrong in the sign-in gateway.' : error.message
    // Any request from a page (a navigation or a form post) gets a page; API clients get JSON.
    if (request.headers.accept?.includes('text/html') === true) {
      setPageSecurityHeaders(reply, [], imgSources)
      return reply.code(status).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: status === 500 ? 'Error' : 'Bad request', message, link: { href: '/', text: 'Back' } }))
    }
    return reply.code(status).send({ error: status === 500 ? 'internal_error' : 'bad_request', message })
  })

  // On the root on purpose: every route, the gateway's and the proxied ones, reads the session
  // cookie (@fastify/secure-session decorates the root request). The hooks and the error handler
  // above are the root's for the same reason: every request gets its id, access line and metric.
  await sessions.register(app)

  // The gateway's own pages and machinery. Every route module is a plugin of its own, registered in
  // this scope: they inherit what is set here, and nothing they set reaches the proxied routes.
  await app.register(async (gateway) => {
    // Forms are parsed for the gateway's own routes only: the application's must reach it untouched.
    await gateway.register(formbody)
    gateway.addHook('onRequest', async (_request, reply) => { setPageSecurityHeaders(reply, [], imgSources) })
    gateway.all(INVALID_TARGET, async (_request, reply) => await reply.code(400).send({ error: 'bad_request', message: 'request target must be an absolute path' }))
    // One throttle for passwords (at sign-in and asked again to add a factor), second-step codes, passkeys and the account page's code checks.
    const throttle = new LoginThrottle(new LoginThrottleStore(db), clock)
    const secondFactors = new SecondFactors(secondFactorRepository, secondFactorKey?.dataKey, clock)
    await gateway.register(localLoginRoutes, { config, users, sessions, metrics, deploymentId, clock, providers, secondFactors, throttle, passkeys })
    const attemptFor = throttleAttempts(config, sessions, deploymentId, clock)
    await gateway.register(accountRoutes, { config, users, sessions, metrics, secondFactors, throttle, revocations, attemptFor })
    // Passkeys (LOCAL_MFA): the account page's and the login page's; 404 unless enabled.
    await gateway.register(passkeyRoutes, { config, users, passkeys, sessions, metrics, clock, throttle, attemptFor, hasSecondFactor: async (userId) => await secondFactors.hasConfirmedFactor(userId) })
    await gateway.register(oidcRoutes, { config, users, sessions, metrics, deploymentId, providers, clock, ...(options.oidcRateLimitAddresses !== undefined ? { rateLimitAddresses: options.oidcRateLimitAddresses } : {}) })
    await gateway.register(idpLogoutRoutes, { providers, users, sessions, metrics })
    const gate = new LogoutGate({ sessions, publicUrl: config.publicUrl, brand, imgSources })
    await gateway.register(logoutRoutes, { sessions, endSessionRedirect: oidcEndSession(providers), gate })
    await gateway.register(opsRoutes, opsDeps)
    await gateway.register(staticRoutes, { logo: config.logo })
    if (jwt !== undefined) await gateway.register(jwksRoute, { config: jwt })
    // Replaces the content-type parsers (a front proxy's subrequest may carry any type): in its own scope.
    await gateway.register(forwardAuthRoutes, { sessions, issuer, accessRules: config.accessRules, metrics, revalidator: providers, localMfa: config.localMfa })
    // Last, once every route above is in place: the rest of /_authgate/ is the gateway's, never proxied.
    gateway.all('/_authgate/*', async (_request, reply) => await reply.code(404).send({ error: 'not_found' }))
  })

  // Everything else: no body parsers, no page headers, its own request decorations (proxy/index.ts).
  await app.register(proxyRoutes, { config, upstream, sessions, issuer, metrics, connections, webSocketFlow, webSockets, imgSources, revalidator: providers })

  return {
    app,
    metricsApp,
    users,
    metrics,
    webSocketFlow,
    close: async () => {
      providers?.stop()
      revocations.stop()
      sessionCleanup.stop()
      await app.close()
      // Re-validations under way finish their database writes before the caller closes the database.
      await providers?.idle()
      await metricsApp?.close()
    }
  }
}

/** What the start did with the second factors' data key, when it did more than open it. */
const SECOND_FACTOR_KEY_LOG: Record<Exclude<DataKeyOutcome, 'opened'>, string> = {
  created: 'second factors: a new data key was made and stored, sealed under SECRET_KEY',
  resealed: 'second factors: the data key was sealed under SECRET_KEY_PREVIOUS and is now sealed under SECRET_KEY; SECRET_KEY_PREVIOUS is no longer needed for it',
  replaced: 'second factors: the stored data key was sealed under a SECRET_KEY no longer configured and nothing depended on it; a new one replaced it'
}
