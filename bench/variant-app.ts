// A comparison gateway for the benchmark only: the same composition as src/app.ts on the proxied
// path (rewriteUrl, secure-session, the local login form to obtain a cookie, the same preHandler,
// header rewriting and identity signing), but with the upstream dispatcher chosen by the caller:
// `undefined` is @fastify/http-proxy's stock configuration (no `undici` option), otherwise the
// given undici Pool. The /_authgate/* machinery, OIDC and logout are left out: they are not on
// the proxied path. bench/proxy.ts runs this with the real pool settings too ("variant-tuned") to
// check that it tracks the real gateway.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import formbody from '@fastify/formbody'
import httpProxy from '@fastify/http-proxy'
import type { Pool } from 'undici'
import type { Config } from '../src/config/index.js'
import type { Db } from '../src/db/index.js'
import { UserRepository } from '../src/db/users.js'
import { readDeploymentId, SessionRepository } from '../src/db/sessions.js'
import { Sessions } from '../src/session/index.js'
import { sessionIdentity } from '../src/session/session.js'
import { RevocationList } from '../src/session/revocations.js'
import { localLoginRoutes } from '../src/auth/local/routes.js'
import { Metrics } from '../src/ops/metrics.js'
import { systemClock } from '../src/clock.js'
import { IdentityIssuer } from '../src/identity/issuer.js'
import { forwardContext } from '../src/proxy/index.js'
import { upstreamRequestHeaders, clientResponseHeaders } from '../src/proxy/forwarding.js'
import { webSocketOptions } from '../src/proxy/websocket.js'
import { OpenConnections } from '../src/proxy/open-connections.js'
import { isBrowserNavigation, isSkipAuthPath, loginLocation, normalizeRequestTarget } from '../src/proxy/access.js'

export async function buildVariantApp (options: { config: Config, db: Db, upstream: URL, pool: Pool | undefined }): Promise<{ app: FastifyInstance, close: () => Promise<void> }> {
  const { config, db, upstream } = options
  const app = Fastify({
    logger: false,
    trustProxy: false,
    bodyLimit: 64 * 1024,
    rewriteUrl: (req) => {
      const target = normalizeRequestTarget(req.url ?? '')
      return target === undefined ? '/_authgate/invalid-request-target' : target.path + target.search
    },
    return503OnClosing: true,
    routerOptions: { maxParamLength: 2048 }
  })
  const metrics = new Metrics()
  const users = new UserRepository(db)
  const sessionRecords = new SessionRepository(db)
  const revocations = new RevocationList(users, sessionRecords, app.log)
  await revocations.start()
  const issuer = new IdentityIssuer(config.headerSigningSecret, undefined)
  const deploymentId = await readDeploymentId(db)
  const sessions = new Sessions({ secretKeys: config.secretKeys, deploymentId, secure: config.sessionCookieSecure, maxAge: config.sessionMaxAge }, { revocations, records: sessionRecords })
  const connections = new OpenConnections(sessions, app.log)
  revocations.afterRefresh(() => { connections.sweep() })
  await app.register(formbody)
  await sessions.register(app)
  await app.register(localLoginRoutes, { config, users, sessions, metrics, db, deploymentId, clock: systemClock, providers: undefined })

  await app.register(async (proxy) => {
    proxy.decorateRequest('identityHeaders', undefined)
    proxy.decorateRequest('accessDecision', 'gateway')
    // The same decision as authorize() in src/proxy/index.ts.
    async function authorize (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const target = normalizeRequestTarget(request.url)!
      if (isSkipAuthPath(target.path, config.skipAuthPaths)) { request.accessDecision = 'skipped'; connections.admit(request, reply, undefined); return }
      const checked = sessions.check(request)
      if (checked.ok) {
        const { session } = checked
        request.identityHeaders = await issuer.headersFor(sessionIdentity(session), session)
        request.accessDecision = 'proxied'
        connections.admit(request, reply, session)
        return
      }
      if (isBrowserNavigation(request.method, request.headers.accept)) { request.accessDecision = 'login-redirect'; await reply.redirect(loginLocation(target), 302); return }
      request.accessDecision = 'refused'
      await reply.code(401).header('cache-control', 'no-store').send({ error: 'unauthenticated' })
    }
    await proxy.register(httpProxy, {
      upstream: upstream.href,
      prefix: '/',
      ...(options.pool !== undefined ? { undici: options.pool } : {}),
      // eslint-disable-next-line @typescript-eslint/no-misused-promises -- typed callback-style only, but http-proxy hands it to fastify.route(), which awaits an async hook
      preHandler: authorize,
      websocket: true,
      ...webSocketOptions((request) => ({ identity: request.identityHeaders, ...forwardContext(request, config) })),
      wsHooks: connections.hooks,
      replyOptions: {
        rewriteRequestHeaders: (request, headers) => upstreamRequestHeaders(headers, { identity: request.identityHeaders, ...forwardContext(request, config) }) as typeof headers,
        rewriteHeaders: (headers) => clientResponseHeaders(headers) as typeof headers
      }
    })
  })
  return { app, close: async () => { revocations.stop(); await app.close() } }
}
