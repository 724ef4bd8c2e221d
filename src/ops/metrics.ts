// The gateway's Prometheus metrics (prom-client), one registry per gateway so that several in one
// process (the tests) do not mix. What each family means is in docs/DEPLOY.md#metrics. Per request
// there is one histogram observation, on a child bound at startup; everything else counts events
// that are rare next to requests (sign-ins, refusals, errors).
import { collectDefaultMetrics, Counter as PromCounter, Gauge, Histogram, Registry } from 'prom-client'
import type { SessionRefusal } from '../session/session.js'

/**
 * What the gateway did with a request, for the request-duration histogram:
 * - `proxied`: a signed-in request passed to the upstream; `skipped`: passed without identity (SKIP_AUTH_PATHS);
 * - `login-redirect`: no session, a browser navigation sent to /login; `refused`: no session, 401;
 * - `forbidden`: signed in, but ACCESS_RULES refuse the path (403);
 * - `client-limit`: refused for holding the upstream pool too long or too much (408, 429);
 * - `unavailable`: a session that cannot be checked now (the revocation list is older than
 *   REVOCATION_MAX_STALENESS: the database is failing), 503, proxy and forward-auth alike;
 * - `forward-auth`, `forward-auth-refused`: answers of /_authgate/auth;
 * - `gateway`: the gateway's own pages and routes (login, logout, health, static files, 404s).
 */
export const ACCESS_DECISIONS = ['proxied', 'skipped', 'login-redirect', 'refused', 'forbidden', 'client-limit', 'forward-auth', 'forward-auth-refused', 'unavailable', 'gateway'] as const
export type AccessDecision = typeof ACCESS_DECISIONS[number]

export type LoginMethod = 'local' | 'oidc'

/** How proxied requests fail at the upstream (authgate_upstream_errors_total; proxy/index.ts). */
export const UPSTREAM_ERROR_KINDS = ['unreachable', 'reset', 'timeout', 'truncated'] as const

/** The IdP's endpoints, for its call latency: which call was slow or failed. */
export type IdpEndpoint = 'discovery' | 'token' | 'jwks' | 'userinfo' | 'other'
/** `ok`: 2xx/3xx; `error`: the IdP answered 4xx/5xx; `failed`: no usable answer (unreachable, timeout, too large). */
export type IdpOutcome = 'ok' | 'error' | 'failed'

/**
 * How a re-validation ended: `unchanged` / `changed` (the identity the IdP gives now), `ended` (the
 * IdP refused the refresh token, or the allow-lists or claims no longer let the user in: session
 * ended), `unavailable` (IdP unreachable, timed out or 5xx: retried later), `error` (any other failure: retried later).
 */
export const REVALIDATION_OUTCOMES = ['unchanged', 'changed', 'ended', 'unavailable', 'error'] as const
export type RevalidationOutcome = typeof REVALIDATION_OUTCOMES[number]

/** The OIDC routes OIDC_RATE_LIMIT applies to: /login/oidc (`start`) and /auth/oidc/callback (`callback`). */
export const OIDC_RATE_LIMITED_ROUTES = ['start', 'callback'] as const
export type OidcRateLimitedRoute = typeof OIDC_RATE_LIMITED_ROUTES[number]

/** What happens to passkeys (authgate_passkey_events_total); refusals are sign-in failures (`passkey-<reason>`). */
export const PASSKEY_EVENTS = ['added', 'removed', 'sign-in', 'second-factor'] as const
export type PasskeyEvent = typeof PASSKEY_EVENTS[number]

/** A counter with one label, counted by label value: what the callers of the earlier hand-written counters use. */
export interface Counter {
  inc: (labelValue: string) => void
}

// Up to 60 s: long-polls and streamed answers are observed when they end (longer ones fall in +Inf).
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const IDP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export class Metrics {
  readonly registry = new Registry()
  readonly upstreamErrors: Counter
  readonly clientsRefused: Counter
  /** ACCESS_RULES refusals (proxy, WebSocket and forward-auth), by reason: `rule`, `ambiguous-path`, `no-reported-uri`. */
  readonly accessRefused: Counter
  /** SSO session re-validations with the IdP, by outcome (see src/auth/oidc/revalidation.ts). */
  readonly revalidations: Counter
  /** Local sign-ins by the second factor they passed: none, totp, recovery, passkey, or enrolment-pending (LOCAL_MFA=required, none enrolled yet). */
  readonly signInsByFactor: Counter
  /** Second sign-in steps refused, by reason: wrong-code, replayed, passkey-refused, step-expired, throttled, csrf, disabled. */
  readonly secondStepFailures: Counter
  private readonly requestDuration: Record<AccessDecision, { observe: (seconds: number) => void }>
  private readonly loginCounter: PromCounter<'method'>
  private readonly loginFailureCounter: PromCounter<'method' | 'reason'>
  private readonly sessionRefusals: PromCounter<'reason'>
  private readonly passkeyCounter: PromCounter<'event'>
  private readonly idpDuration: Histogram<'endpoint' | 'outcome' | 'provider'>
  private readonly idpLogouts: PromCounter<'channel' | 'outcome'>
  private readonly idpLogoutSessions: PromCounter<'channel'>
  private openWebSockets: () => number = () => 0
  private upstreamPool: () => { running: number, queued: number } = () => ({ running: 0, queued: 0 })
  private readonly oidcRateLimitedCounter: PromCounter<'route'>
  private oidcRateLimitTracked: (route: OidcRateLimitedRoute) => number = () => 0
  /** What a scrape gets: this registry's figures; with WORKERS > 1, every worker's added up (src/cluster.ts). */
  private renderer: () => Promise<string> = async () => await this.registry.metrics()

  constructor () {
    const registers = [this.registry]
    // Process and Node.js metrics every Node service exports (CPU, memory, event loop lag, GC, handles).
    collectDefaultMetrics({ register: this.registry })
    const requests = new Histogram({ name: 'authgate_request_duration_seconds', help: 'Requests answered, by what the gateway decided; seconds until the whole answer went out (a streamed answer counts to its end).', labelNames: ['decision'], buckets: REQUEST_BUCKETS, registers })
    // Every decision from the start, so rates are defined before the first such request.
    this.requestDuration = Object.fromEntries(ACCESS_DECISIONS.map((decision) => {
      requests.zero({ decision })
      return [decision, requests.labels(decision)]
    })) as unknown as Metrics['requestDuration']
    this.loginCounter = new PromCounter({ name: 'authgate_logins_total', help: 'Successful sign-ins, by method.', labelNames: ['method'], registers })
    this.loginFailureCounter = new PromCounter({ name: 'authgate_login_failures_total', help: 'Refused sign-ins, by method and reason.', labelNames: ['method', 'reason'], registers })
    for (const method of ['local', 'oidc']) this.loginCounter.inc({ method }, 0)
    this.passkeyCounter = new PromCounter({ name: 'authgate_passkey_events_total', help: 'Passkeys added and removed, and used: to sign in without a password (sign-in) or as the second factor (second-factor).', labelNames: ['event'], registers })
    for (const event of PASSKEY_EVENTS) this.passkeyCounter.inc({ event }, 0)
    this.sessionRefusals = new PromCounter({ name: 'authgate_session_refusals_total', help: 'Requests whose session cookie was refused, by reason.', labelNames: ['reason'], registers })
    const upstreamErrors = new PromCounter({ name: 'authgate_upstream_errors_total', help: 'Proxied requests the upstream failed, by kind: unreachable, reset (closed before its headers), timeout (no headers in time), truncated (closed during its answer).', labelNames: ['kind'], registers })
    for (const kind of UPSTREAM_ERROR_KINDS) upstreamErrors.inc({ kind }, 0)
    this.upstreamErrors = oneLabel('kind', upstreamErrors)
    const upstreamPool = (): { running: number, queued: number } => this.upstreamPool()
    // eslint-disable-next-line no-new -- registering is all it is for: `registers` keeps it, collect() reads the pool
    new Gauge({ name: 'authgate_upstream_requests_active', help: 'Proxied requests holding an upstream connection now (at most UPSTREAM_POOL_SIZE).', registers, collect () { this.set(upstreamPool().running) } })
    // eslint-disable-next-line no-new -- as above
    new Gauge({ name: 'authgate_upstream_requests_queued', help: 'Proxied requests waiting for a free upstream connection now (the pool is full).', registers, collect () { this.set(upstreamPool().queued) } })
    this.clientsRefused = oneLabel('reason', new PromCounter({ name: 'authgate_client_requests_refused_total', help: 'Requests refused for holding the upstream pool too long or too much, by reason.', labelNames: ['reason'], registers }))
    const accessRefusals = new PromCounter({ name: 'authgate_access_refusals_total', help: 'Signed-in requests refused by ACCESS_RULES (403), by reason.', labelNames: ['reason'], registers })
    for (const reason of ['rule', 'ambiguous-path', 'no-reported-uri']) accessRefusals.inc({ reason }, 0)
    this.accessRefused = oneLabel('reason', accessRefusals)
    const revalidations = new PromCounter({ name: 'authgate_oidc_revalidations_total', help: 'SSO sessions re-validated with the IdP (refresh token), by outcome.', labelNames: ['outcome'], registers })
    for (const outcome of REVALIDATION_OUTCOMES) revalidations.inc({ outcome }, 0)
    this.revalidations = oneLabel('outcome', revalidations)
    const byFactor = new PromCounter({ name: 'authgate_local_sign_ins_by_factor_total', help: 'Successful local password sign-ins, by the second factor passed (none, totp, recovery, passkey, enrolment-pending).', labelNames: ['factor'], registers })
    for (const factor of ['none', 'totp', 'recovery', 'passkey', 'enrolment-pending']) byFactor.inc({ factor }, 0)
    this.signInsByFactor = oneLabel('factor', byFactor)
    const stepFailures = new PromCounter({ name: 'authgate_second_step_failures_total', help: 'Second sign-in steps (POST /login/mfa) refused, by reason.', labelNames: ['reason'], registers })
    for (const reason of ['wrong-code', 'replayed', 'passkey-refused', 'step-expired', 'throttled']) stepFailures.inc({ reason }, 0)
    this.secondStepFailures = oneLabel('reason', stepFailures)
    const openWebSockets = (): number => this.openWebSockets()
    // eslint-disable-next-line no-new -- registering is all it is for: `registers` keeps it, collect() reads the count
    new Gauge({ name: 'authgate_websockets_open', help: 'Proxied WebSockets open now (both sides connected).', registers, collect () { this.set(openWebSockets()) } })
    this.idpLogouts = new PromCounter({ name: 'authgate_idp_logouts_total', help: 'IdP-initiated logout requests, by channel (back, front) and outcome (accepted, refused).', labelNames: ['channel', 'outcome'], registers })
    this.idpLogoutSessions = new PromCounter({ name: 'authgate_idp_logout_sessions_ended_total', help: 'Sessions ended by IdP-initiated logout, by channel.', labelNames: ['channel'], registers })
    for (const channel of ['back', 'front']) {
      for (const outcome of ['accepted', 'refused']) this.idpLogouts.inc({ channel, outcome }, 0)
      this.idpLogoutSessions.inc({ channel }, 0)
    }
    this.oidcRateLimitedCounter = new PromCounter({ name: 'authgate_oidc_rate_limited_total', help: 'SSO requests refused with 429 by OIDC_RATE_LIMIT, by route (start: /login/oidc, callback: /auth/oidc/callback).', labelNames: ['route'], registers })
    for (const route of OIDC_RATE_LIMITED_ROUTES) this.oidcRateLimitedCounter.inc({ route }, 0)
    const tracked = (route: OidcRateLimitedRoute): number => this.oidcRateLimitTracked(route)
    // eslint-disable-next-line no-new -- registering is all it is for: collect() reads the sizes
    new Gauge({
      name: 'authgate_oidc_rate_limit_addresses',
      help: 'Client addresses OIDC_RATE_LIMIT tracks now, by route (bounded: the oldest give way past the cap).',
      labelNames: ['route'],
      registers,
      collect () { for (const route of OIDC_RATE_LIMITED_ROUTES) this.set({ route }, tracked(route)) }
    })
    this.idpDuration = new Histogram({ name: 'authgate_idp_request_duration_seconds', help: 'Requests to the OpenID Provider, by endpoint and outcome (and provider, with OIDC_PROVIDERS); seconds until the answer was read.', labelNames: ['endpoint', 'outcome', 'provider'], buckets: IDP_BUCKETS, registers })
  }

  /** A request's answer went out completely (answers cut short are not observed: Fastify's onResponse never runs for them). */
  request (decision: AccessDecision, seconds: number): void {
    this.requestDuration[decision].observe(seconds)
  }

  login (method: LoginMethod): void {
    this.loginCounter.inc({ method })
  }

  loginFailure (method: LoginMethod, reason: string): void {
    this.loginFailureCounter.inc({ method, reason })
  }

  passkey (event: PasskeyEvent): void {
    this.passkeyCounter.inc({ event })
  }

  sessionRefused (reason: SessionRefusal): void {
    this.sessionRefusals.inc({ reason })
  }

  /** `provider`: the provider's id with OIDC_PROVIDERS; without, the series have no provider label. */
  idpRequest (endpoint: IdpEndpoint, outcome: IdpOutcome, seconds: number, provider?: string): void {
    this.idpDuration.observe(provider !== undefined ? { endpoint, outcome, provider } : { endpoint, outcome }, seconds)
  }

  /** An IdP-initiated logout request: accepted (with how many sessions it ended) or refused. */
  idpLogout (channel: 'back' | 'front', outcome: 'accepted' | 'refused', sessionsEnded = 0): void {
    this.idpLogouts.inc({ channel, outcome })
    if (sessionsEnded > 0) this.idpLogoutSessions.inc({ channel }, sessionsEnded)
  }

  /** Where the upstream pool's busy connections and waiting requests are read (at each scrape). */
  watchUpstreamPool (stats: () => { running: number, queued: number }): void {
    this.upstreamPool = stats
  }

  /** An SSO request refused by OIDC_RATE_LIMIT. */
  oidcRateLimited (route: OidcRateLimitedRoute): void {
    this.oidcRateLimitedCounter.inc({ route })
  }

  /** How many addresses each OIDC rate limiter tracks (read at each scrape). */
  countOidcRateLimitAddresses (tracked: (route: OidcRateLimitedRoute) => number): void {
    this.oidcRateLimitTracked = tracked
  }

  /** Where the open WebSockets are counted (read at each scrape). */
  countWebSockets (count: () => number): void {
    this.openWebSockets = count
  }

  get contentType (): string {
    return this.registry.contentType
  }

  async render (): Promise<string> {
    return await this.renderer()
  }

  /** Scrapes get what `render` returns instead of this registry's own figures (a cluster's sum). */
  renderWith (render: () => Promise<string>): void {
    this.renderer = render
  }
}

function oneLabel<L extends string> (label: L, counter: PromCounter<L>): Counter {
  return { inc: (value) => { counter.inc({ [label]: value } as Record<L, string>) } }
}
