// Everything that is not a gateway route goes to the upstream: identified, access-checked (session,
// SKIP_AUTH_PATHS, ACCESS_RULES), stripped of forged identity, signed, and streamed through a
// deliberately sized connection pool.
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import type { Config } from '../config/index.js'
import type { Sessions } from '../session/index.js'
import { sessionIdentity, sessionSubject, type SessionPayload } from '../session/session.js'
import { checkAccess } from '../policy/access-rules.js'
import { forbiddenPage } from '../pages/forbidden.js'
import type { IdentityIssuer, OutgoingIdentityHeaders } from '../identity/issuer.js'
import { brandOf, messagePage } from '../pages/layout.js'
import { setPageSecurityHeaders } from '../pages/security-headers.js'
import { sendGatewayIcon } from '../pages/static.js'
import type { Metrics } from '../ops/metrics.js'
import { isBrowserNavigation, isSkipAuthPath, loginLocation, splitTarget } from './access.js'
import { clientResponseHeaders, upstreamRequestHeaders } from './forwarding.js'
import { combineWsHooks, webSocketOptions } from './websocket.js'
import { limitClients } from './client-limits.js'
import { UpstreamPool, type UpstreamPoolEvents } from './hang-up.js'
import { HttpForwarder, upstreamPath } from './forward-http.js'
import { UPSTREAM_HEADER_TIMEOUT_DEFAULT } from '../config/proxy.js'
import type { OpenConnections } from './open-connections.js'
import type { OpenWebSockets } from './open-websockets.js'
import type { WebSocketFlow } from './websocket-flow.js'
import type { SessionRevalidator } from '../auth/oidc/revalidation.js'
import { RETRY_AFTER_SECONDS, SESSIONS_UNAVAILABLE } from '../pages/unavailable.js'
import { ACCOUNT_PATH, secondFactorHold } from '../auth/mfa/gate.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Signed identity headers for this request (undefined: forwarded without identity). */
    identityHeaders: OutgoingIdentityHeaders | undefined
  }
}

export interface ProxyDeps {
  config: Config
  upstream: URL
  sessions: Sessions
  issuer: IdentityIssuer
  metrics: Metrics
  /** Holds each proxied WebSocket and response to the session that opened it. */
  connections: OpenConnections
  /** Backpressure for proxied WebSockets, both directions. */
  webSocketFlow: WebSocketFlow
  /** The WebSockets open now: counted, and closed at the end of a shutdown's grace period. */
  webSockets: OpenWebSockets
  /** Extra image origins for the gateway's own error pages (a LOGO_URL elsewhere). */
  imgSources?: string[]
  /** SSO sessions' re-validation with the IdP, started by their own requests (none: off). */
  revalidator?: Pick<SessionRevalidator, 'touch'>
}

/** Upstream connections kept open by default (UPSTREAM_POOL_SIZE): enough for concurrent long-polls and bursts, bounded for the upstream's sake. */
export const UPSTREAM_CONNECTIONS = 128

export interface UpstreamPoolOptions {
  /** UPSTREAM_HEADER_TIMEOUT: how long the upstream may take to send its response headers. */
  headersTimeoutMs?: number
  events?: UpstreamPoolEvents
}

export function createUpstreamPool (upstream: URL, connections = UPSTREAM_CONNECTIONS, options: UpstreamPoolOptions = {}): UpstreamPool {
  return new UpstreamPool(upstream.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    // A hung application answers 504 after the header timeout, which frees its connection. Once the
    // headers are in, nothing is timed: long-polls that answer at once and stream later, server-sent
    // events and large downloads may legitimately stay open (undici times the headers from the end
    // of the request body, so a slow upload is not counted against the upstream).
    headersTimeout: options.headersTimeoutMs ?? UPSTREAM_HEADER_TIMEOUT_DEFAULT * 1000,
    bodyTimeout: 0,
    connect: { rejectUnauthorized: true }
  }, options.events)
}

/** How an upstream request failed before its answer began: what the client gets and how it is counted. */
export interface UpstreamFailure {
  /** `unreachable`: no connection (refused, DNS, TLS); `reset`: closed before the headers; `timeout`: no headers in time (or no connection in time). */
  kind: 'unreachable' | 'reset' | 'timeout'
  status: 502 | 504
  /** The failure's code (ECONNREFUSED, UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT, ...), for the log. */
  reason: string
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

/** `error`: undici's (or one that wraps it as its `cause`). */
export function classifyUpstreamFailure (error: Error): UpstreamFailure {
  const cause = (error as { cause?: unknown }).cause
  const code = (cause instanceof Error ? (cause as { code?: unknown }).code : undefined) ?? (error as { code?: unknown }).code
  const reason = typeof code === 'string' ? code : error.name
  if (TIMEOUT_CODES.has(reason)) return { kind: 'timeout', status: 504, reason }
  if (RESET_CODES.has(reason)) return { kind: 'reset', status: 502, reason }
  return { kind: 'unreachable', status: 502, reason }
}

const FAILURE_TITLES: Record<UpstreamFailure['kind'], string> = {
  unreachable: 'The application is not reachable',
  reset: 'The application closed the connection',
  timeout: 'The application is taking too long'
}

/** At most one "pool full" warning per this many milliseconds: under sustained saturation every request would log it. */
const POOL_FULL_LOG_INTERVAL_MS = 60_000

export function forwardContext (request: Pick<FastifyRequest, 'ips' | 'ip' | 'protocol' | 'host' | 'id'>, config: Config): { forwardedFor: string[], proto: string, host: string, requestId: string } {
  // request.ips honours TRUST_PROXY: the socket peer plus only the trusted X-Forwarded-For hops.
  const chain = request.ips !== undefined ? [...request.ips].reverse() : [request.ip]
  return {
    forwardedFor: chain,
    proto: config.publicUrl !== undefined ? config.publicUrl.protocol.slice(0, -1) : request.protocol,
    host: config.publicUrl !== undefined ? config.publicUrl.host : request.host,
    requestId: request.id
  }
}

export const proxyRoutes: FastifyPluginAsync<ProxyDeps> = async (app, deps) => {
  const { config, upstream, sessions, issuer, metrics, connections, webSocketFlow } = deps
  app.decorateRequest('identityHeaders', undefined)
  // No body is parsed on the way to the upstream (Fastify's default text/plain parser would buffer
  // it against the gateway's body limit and re-send it with another Content-Type): the proxy's
  // own pass-through parser streams every type as it came.
  app.removeAllContentTypeParsers()
  // One client may hold only part of the pool, and only while it keeps sending (client-limits.ts).
  const clientLimits = limitClients(app, { limits: config.clientLimits, brand: brandOf(config), imgSources: deps.imgSources, refused: metrics.clientsRefused })

  /** Runs before anything reaches the upstream: identity, or the skip-auth rule, or a refusal. */
  async function authorize (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // request.url is already normalised (the server's rewriteUrl): split it, do not parse it again.
    const target = splitTarget(request.url)
    if (isSkipAuthPath(target.path, config.skipAuthPaths)) {
      request.accessDecision = 'skipped'
      forward(request, reply, undefined)
      return
    }
    const checked = sessions.check(request)
    if (checked.ok) {
      const { session } = checked
      // Due for re-validation: in the background; this request goes on with the identity it has.
      deps.revalidator?.touch(session)
      // LOCAL_MFA=required and no second factor yet: the account page, and nothing of the upstream
      // (upgrades included: they come through here before any upstream connection).
      if (secondFactorHold(config.localMfa, session) !== undefined) {
        request.accessDecision = 'forbidden'
        if (isBrowserNavigation(request.method, request.headers.accept)) {
          await reply.redirect(ACCOUNT_PATH, 302)
          return
        }
        await reply.code(403).header('cache-control', 'no-store').send({ error: 'second_factor_required' })
        return
      }
      // ACCESS_RULES, on the same normalised path that is proxied; upgrades too, before any upstream connection.
      const access = config.accessRules.length > 0 ? checkAccess(config.accessRules, target.path, sessionSubject(session)) : undefined
      if (access !== undefined && !access.ok) {
        await refuseByRule(request, reply, session, access)
        return
      }
      request.identityHeaders = issuer.asserts ? await issuer.headersFor(sessionIdentity(session), session) : issuer.signedHeaders(sessionIdentity(session))
      request.accessDecision = 'proxied'
      forward(request, reply, session)
      return
    }
    if (checked.reason === 'unverifiable') {
      await refuseUnverifiable(request, reply)
      return
    }
    // Why a cookie did not get the user in (expired, revoked, ...): the access line only says 401 or 302.
    if (checked.reason !== 'absent') request.log.info({ reason: checked.reason }, 'session cookie refused')
    // Browsers fetch /favicon.ico by themselves: before sign-in it is the gateway pages' icon, not a 401.
    if (target.path === '/favicon.ico' && (request.method === 'GET' || request.method === 'HEAD')) {
      await sendGatewayIcon(reply)
      return
    }
    if (isBrowserNavigation(request.method, request.headers.accept)) {
      request.accessDecision = 'login-redirect'
      await reply.redirect(loginLocation(target), 302)
      return
    }
    request.accessDecision = 'refused'
    await reply.code(401).header('cache-control', 'no-store').send({ error: 'unauthenticated' })
  }

  /**
   * 503: the session may be fine, but the revocation list is too old to say (the database is
   * failing): refused without sending the user to sign in (which could not work now either), and the
   * cookie is kept, so the same session goes on once the list is refreshed.
   */
  async function refuseUnverifiable (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    request.accessDecision = 'unavailable'
    void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).header('cache-control', 'no-store')
    if (isBrowserNavigation(request.method, request.headers.accept)) {
      setPageSecurityHeaders(reply, [], deps.imgSources)
      await reply.type('text/html; charset=utf-8').send(messagePage({ ...brandOf(config), ...SESSIONS_UNAVAILABLE, link: { href: request.url, text: 'Try again' } }))
      return
    }
    await reply.send({ error: 'sessions_unavailable', message: SESSIONS_UNAVAILABLE.message })
  }

  /** 403: a page for navigations, JSON otherwise; counted, and logged with the rule (never the query). */
  async function refuseByRule (request: FastifyRequest, reply: FastifyReply, session: SessionPayload, refusal: { reason: 'rule' | 'ambiguous-path', rule: string }): Promise<void> {
    request.accessDecision = 'forbidden'
    metrics.accessRefused.inc(refusal.reason)
    request.log.info({ user: session.u, reason: refusal.reason, rule: refusal.reason === 'rule' ? refusal.rule : undefined }, 'refused by ACCESS_RULES')
    void reply.code(403).header('cache-control', 'no-store')
    if (isBrowserNavigation(request.method, request.headers.accept)) {
      setPageSecurityHeaders(reply, [], deps.imgSources)
      await reply.type('text/html; charset=utf-8').send(forbiddenPage(brandOf(config), session.u))
      return
    }
    await reply.send({ error: 'forbidden' })
  }

  /** Lets a request through to the upstream, tracked with its session (cancelled if its client leaves: forward-http.ts). */
  function forward (request: FastifyRequest, reply: FastifyReply, session: SessionPayload | undefined): void {
    connections.admit(request, reply, session)
  }

  // Requests beyond the pool wait in undici's queue for a free connection, untimed: say so, so a pool
  // held by hung requests (each freed after UPSTREAM_HEADER_TIMEOUT) or by long streams is visible.
  let poolFullLoggedAt = -Infinity
  const pool = createUpstreamPool(upstream, config.upstreamPoolSize, {
    headersTimeoutMs: config.upstreamHeaderTimeoutMs,
    events: {
      queued: (queued) => {
        const now = Date.now()
        if (now - poolFullLoggedAt < POOL_FULL_LOG_INTERVAL_MS) return
        poolFullLoggedAt = now
        app.log.warn({ connections: config.upstreamPoolSize, queued }, 'upstream connection pool full: requests wait for a free connection (see authgate_upstream_requests_queued)')
      }
    }
  })
  metrics.watchUpstreamPool(() => pool.stats)

  /** How a failure before the upstream's answer began is answered: 502/504, a page for navigations, JSON otherwise. */
  function answerFailure (request: FastifyRequest, reply: FastifyReply, error: Error): void {
    // A body that came too slowly was answered (408) and its upstream request aborted on purpose.
    if (clientLimits.endedForSlowness(request)) return
    const failure = classifyUpstreamFailure(error)
    metrics.upstreamErrors.inc(failure.kind)
    // One line with the reason, no stack trace.
    request.log.warn({ method: request.method, path: request.url.split('?', 1)[0], kind: failure.kind, reason: failure.reason, err: (error.cause instanceof Error ? error.cause : error).message, status: failure.status },
      'upstream request failed')
    if (reply.sent) return
    if (isBrowserNavigation(request.method, request.headers.accept)) {
      // Our page, not the upstream's: it gets the gateway pages' headers (CSP and the rest).
      setPageSecurityHeaders(reply, [], deps.imgSources)
      void reply.code(failure.status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(messagePage({
        ...brandOf(config),
        title: FAILURE_TITLES[failure.kind],
        message: 'The sign-in gateway could not get an answer from the application behind it. Try again in a moment.',
        link: { href: request.url, text: 'Try again' }
      }))
    } else {
      void reply.code(failure.status).header('cache-control', 'no-store').send({ error: failure.status === 504 ? 'upstream_timeout' : 'bad_gateway' })
    }
  }

  const http = new HttpForwarder(pool, upstream, {
    failed: answerFailure,
    cutShort: (request, status, error) => {
      if (clientLimits.endedForSlowness(request)) return
      metrics.upstreamErrors.inc('truncated')
      request.log.warn({ method: request.method, path: request.url.split('?', 1)[0], status, kind: 'truncated', reason: (error as { code?: string }).code ?? error.name, err: error.message },
        'upstream closed the connection during its answer: response cut short')
    },
    // Logged once, at info: the request gets no access line (it was never answered completely), and
    // a cancellation made on purpose is no warning.
    clientLeft: (request, reply) => {
      request.log.info({ method: request.method, path: request.url.split('?', 1)[0], status: reply.raw.headersSent ? reply.raw.statusCode : undefined },
        'connection closed before the answer was complete: upstream request cancelled')
      request.log = request.log.child({}, { level: 'error' })
    }
  })

  await app.register(httpProxy, {
    upstream: upstream.href,
    prefix: '/',
    // Only closed by the plugin with the gateway (once its server has closed): no idle connection to
    // the upstream outlives it. Its HTTP requests go through `http` above.
    undici: pool,
    destroyAgent: true,
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- typed callback-style only, but http-proxy hands it to fastify.route(), which awaits an async hook
    preHandler: authorize,
    // Upgrades take the same route, preHandler included (see websocket.ts).
    websocket: true,
    ...webSocketOptions((request) => ({ identity: request.identityHeaders, ...forwardContext(request, config) })),
    wsHooks: combineWsHooks(connections.hooks, webSocketFlow.hooks, deps.webSockets.hooks),
    // `dest`: the plugin's destination (UPSTREAM_URL's path included), validated by it; `options.rewriteHeaders`:
    // its rewriting of the answer's headers (a Location under UPSTREAM_URL's path, invalid characters) around ours.
    handler: (request, reply, dest, options) => {
      request.log.debug('forwarding to the upstream')
      const headers = upstreamRequestHeaders(request.headers, { identity: request.identityHeaders, ...forwardContext(request, config) })
      http.forward(request, reply, upstreamPath(dest, request.url), headers, options.rewriteHeaders as (headers: object, request: FastifyRequest) => Record<string, string>)
    },
    replyOptions: {
      rewriteHeaders: (headers, request) => {
        request?.log.debug('upstream answered')
        return clientResponseHeaders(headers, request?.id) as typeof headers
      }
    }
  })
}
