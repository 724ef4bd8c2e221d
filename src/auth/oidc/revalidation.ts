// Sessions that follow the IdP. Without this, an SSO session lives from sign-in to SESSION_MAX_AGE on
// what the IdP said at sign-in: someone removed from the admin group keeps X-Admin: true for a day.
//
// When the IdP issued a refresh token at sign-in (kept encrypted in the session's row, never in the
// cookie), a session is re-validated at most every OIDC_REFRESH_INTERVAL seconds, driven by its own
// traffic: a proxied request, WebSocket upgrade or forward-auth check of a session whose last
// validation is older than that starts a refresh in the background and is itself served at once with
// the identity it has; the requests after the refresh carry the new one (src/session/identities.ts).
// Concurrent requests of one session start one refresh (one promise per session id here), and across
// replicas one at a time (a conditional UPDATE claims the row, src/db/sessions.ts claimRefresh).
//
// A refresh re-reads the claims as the sign-in did (new ID token, userinfo), maps them, re-applies
// the allow-lists and the admin mapping, updates the user row and stores the rotated refresh token.
// The IdP refusing the refresh token (invalid_grant: account deleted or disabled there, consent or
// session revoked), the allow-lists refusing, or claims the sign-in would refuse end the session at
// once (audit line `session-ended`). An IdP that cannot be reached (network, timeout, 5xx) ends
// nothing: logged and tried again one interval later, as is any other failure.
import type { FastifyBaseLogger } from 'fastify'
import { ResponseBodyError } from 'openid-client'
import type { Config, OidcConfig } from '../../config/index.js'
import type { SessionRepository } from '../../db/sessions.js'
import type { User, UserRepository } from '../../db/users.js'
import type { SessionPayload } from '../../session/session.js'
import type { RefreshTokenCipher } from '../../session/refresh-token-cipher.js'
import { identityOf, parseRefreshedIdentity, sameIdentity, type RefreshedIdentity, type SessionIdentities } from '../../session/identities.js'
import type { RevocationList } from '../../session/revocations.js'
import type { Metrics, RevalidationOutcome } from '../../ops/metrics.js'
import { auditBackground } from '../../ops/audit.js'
import { checkSignInAllowed } from '../../policy/sign-in-allow-list.js'
import { adminAfterLogin, adminRuleFor } from './admin.js'
import { mapClaims } from './claims.js'
import { IdpNotReadyError, IdpResponseTooLargeError, type OidcClient } from './client.js'
import { describeError } from './errors.js'
import { systemClock, type Clock } from '../../clock.js'
import { isDatabaseUnavailable } from '../../db/unavailable.js'

/** How long a replica's claim on a refresh lasts: past it, another replica may take over. */
export const REFRESH_CLAIM_MS = 30_000
/** A session that was not due (another replica validated it) is looked at again no sooner than this. */
const MIN_RECHECK_MS = 1000
/** The database failing: a session's re-validation is tried again this long after, at the soonest. */
const DATABASE_RETRY_MS = 10_000

export interface RevalidatorDeps {
  config: Pick<Config, 'adminUsernames'>
  /** The provider whose sessions this re-validates: its client, claims, allow-lists and admin mapping. */
  oidc: OidcConfig
  client: Pick<OidcClient, 'refresh' | 'issuer'>
  records: SessionRepository
  users: UserRepository
  cipher: RefreshTokenCipher
  identities: Pick<SessionIdentities, 'set'>
  /** Ends a session on this replica at once (the others read the ended row at their next refresh). */
  revocations: Pick<RevocationList, 'endSession'>
  metrics: Pick<Metrics, 'revalidations'>
  log: FastifyBaseLogger
  clock?: Clock
}

/** Why a re-validation ended a session (the audit line's `reason`). */
type EndReason = 'idp-refused' | 'not-allowed' | 'claims-refused' | 'subject-changed' | 'user-gone' | 'user-disabled' | 'token-unreadable'

class SessionEnd extends Error {
  constructor (readonly reason: EndReason, detail: string) {
    super(detail)
  }
}

export class SessionRevalidator {
  /** When each session seen here is next due (clock ms; Infinity: it has no refresh token). */
  private readonly due = new Map<string, { at: number, expiresAt: number }>()
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly intervalMs: number
  private readonly clock: Clock
  private lastPrune = 0

  constructor (private readonly deps: RevalidatorDeps) {
    this.intervalMs = deps.oidc.refreshInterval * 1000
    this.clock = deps.clock ?? systemClock
  }

  /**
   * A request of this session is being let through: when it is due, re-validate in the background.
   * Never waits and never throws; the request goes on with the identity it has.
   */
  touch (session: SessionPayload): void {
    if (session.m !== 'oidc' || this.intervalMs <= 0) return
    const now = this.clock.now()
    const due = this.due.get(session.sid)
    if ((due !== undefined && due.at > now) || this.inFlight.has(session.sid)) return
    this.prune(now)
    const run = this.revalidate(session, now)
      .catch((err: unknown) => {
        if (isDatabaseUnavailable(err)) {
          // The database failing is no news about this session: it goes on (within REVOCATION_MAX_STALENESS),
          // tried again an interval later (10 s at least) rather than at each of its requests meanwhile.
          const retryMs = Math.max(this.intervalMs, DATABASE_RETRY_MS)
          this.due.set(session.sid, { at: this.clock.now() + retryMs, expiresAt: session.exp * 1000 })
          this.deps.log.warn({ err: describeError(err), sid: session.sid, retryInSeconds: retryMs / 1000 }, 'SSO session re-validation: the database is unavailable; session kept, retrying later')
          return
        }
        this.deps.log.error({ err: describeError(err), sid: session.sid }, 'SSO session re-validation failed unexpectedly')
      })
      .finally(() => { this.inFlight.delete(session.sid) })
    this.inFlight.set(session.sid, run)
  }

  /** Every re-validation under way has finished (for shutdown and tests). */
  async idle (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight.values())
  }

  private prune (now: number): void {
    if (now - this.lastPrune < 60_000) return
    this.lastPrune = now
    for (const [id, entry] of this.due) if (entry.expiresAt <= now) this.due.delete(id)
  }

  private async revalidate (session: SessionPayload, now: number): Promise<void> {
    const { records } = this.deps
    const expiresAt = session.exp * 1000
    const claimed = await records.claimRefresh(session.sid, new Date(now), new Date(now - this.intervalMs), new Date(now + REFRESH_CLAIM_MS))
    const state = await records.refreshState(session.sid)
    if (state === undefined || state.endedAt !== null || state.sealedRefreshToken === null) {
      // No refresh token (the IdP issued none, or the session ended): nothing to re-validate, ever.
      this.due.set(session.sid, { at: Number.POSITIVE_INFINITY, expiresAt })
      return
    }
    if (!claimed) {
      // Validated recently (here or by another replica), or being refreshed, or postponed: look again later.
      const validatedAt = state.validatedAt?.getTime() ?? now
      this.due.set(session.sid, { at: Math.max(validatedAt + this.intervalMs, now + MIN_RECHECK_MS), expiresAt })
      return
    }
    const outcome = await this.refresh(session, state.userId, state.sealedRefreshToken, state.identity, state.identityVersion, now)
    this.deps.metrics.revalidations.inc(outcome)
    this.due.set(session.sid, { at: outcome === 'ended' ? Number.POSITIVE_INFINITY : now + this.intervalMs, expiresAt })
  }

  private async refresh (session: SessionPayload, userId: number, sealed: string, storedIdentity: string | null, identityVersion: number, now: number): Promise<RevalidationOutcome> {
    const { records, users, cipher, client, log } = this.deps
    const sid = session.sid
    try {
      const refreshToken = cipher.decrypt(sid, sealed)
      if (refreshToken === undefined) throw new SessionEnd('token-unreadable', 'the refresh token does not decrypt with SECRET_KEY or SECRET_KEY_PREVIOUS')
      const user = await users.findById(userId)
      if (user === undefined) throw new SessionEnd('user-gone', 'the user row no longer exists')
      if (!user.isActive) throw new SessionEnd('user-disabled', 'the user is disabled')
      if (user.oidcSub === null || user.oidcIssuer !== client.issuer) throw new SessionEnd('subject-changed', 'the user is no longer linked to this IdP identity')
      const started = performance.now()
      const result = await client.refresh(refreshToken, user.oidcSub)
      const sealedRefreshToken = result.refreshToken !== undefined ? cipher.encrypt(sid, result.refreshToken) : undefined
      const current = (storedIdentity !== null ? parseRefreshedIdentity(storedIdentity) : undefined) ?? identityOf(session)
      const next = result.claims === undefined ? current : await this.apply(user, result.claims)
      const changed = !sameIdentity(current, next)
      const validatedAt = new Date(now)
      await records.finishRefresh(sid, { validatedAt, ...(sealedRefreshToken !== undefined ? { sealedRefreshToken } : {}), ...(changed ? { identity: { json: JSON.stringify(next), version: identityVersion + 1 } } : {}) })
      if (!changed) {
        log.debug({ sid, user: user.username, ms: Math.round(performance.now() - started) }, 'SSO session re-validated: unchanged')
        return 'unchanged'
      }
      this.deps.identities.set(sid, identityVersion + 1, next, session.exp * 1000)
      log.info({ sid, user: user.username, admin: next.a, groups: next.g.length, ms: Math.round(performance.now() - started) }, 'SSO session re-validated: the IdP changed its identity')
      if (current.a !== next.a) {
        const mapping = this.mapping()
        const by = next.a ? adminRuleFor({ username: user.username, email: next.e, emailVerified: next.ev, groups: next.g }, mapping) ?? 'admin-usernames' : 'oidc-mapping'
        auditBackground(log, { audit: next.a ? 'admin-granted' : 'admin-revoked', user: user.username, method: 'oidc', by, reason: 'oidc-revalidation' })
      }
      return 'changed'
    } catch (err) {
      const end = err instanceof SessionEnd ? err : isRefusal(err) ? new SessionEnd('idp-refused', describeError(err)) : undefined
      if (end !== undefined) {
        await this.end(session, end)
        return 'ended'
      }
      if (isDatabaseUnavailable(err)) throw err
      // Unreachable, slow, 5xx, or anything else: the session goes on; no replica tries before one interval.
      const unavailable = isUnavailable(err)
      log[unavailable ? 'warn' : 'error']({ sid, err: describeError(err), retryInSeconds: this.intervalMs / 1000 },
        unavailable ? 'SSO session re-validation: IdP unreachable; session kept, retrying later' : 'SSO session re-validation failed; session kept, retrying later')
      await records.postponeRefresh(sid, new Date(now + this.intervalMs))
      return unavailable ? 'unavailable' : 'error'
    }
  }

  /** The claims as a sign-in would take them: mapped, allow-listed, admin mapped; the user row updated. */
  private async apply (user: User, claims: Record<string, unknown>): Promise<RefreshedIdentity> {
    const mapped = mapClaims(claims, this.deps.oidc)
    if (!mapped.ok) throw new SessionEnd('claims-refused', `claim mapping: ${mapped.reason}`)
    const identity = mapped.identity
    if (!checkSignInAllowed(this.deps.oidc.signInAllowList, identity).ok) throw new SessionEnd('not-allowed', 'not in ALLOWED_EMAIL_DOMAINS, ALLOWED_EMAILS or ALLOWED_GROUPS any more')
    const isAdmin = adminAfterLogin(user.isAdmin, { ...identity, username: user.username }, this.mapping())
    const updated = await this.deps.users.recordOidcRevalidation(user.id, { fullName: identity.fullName, email: identity.email, isAdmin })
    if (updated === undefined) throw new SessionEnd('user-gone', 'the user row no longer exists')
    return { a: updated.isAdmin, e: updated.email, n: updated.fullName, g: identity.groups, ev: identity.emailVerified === true }
  }

  private mapping (): { adminGroup: string | undefined, adminEmails: string[], adminUsernames: string[] } {
    return { adminGroup: this.deps.oidc.adminGroup, adminEmails: this.deps.oidc.adminEmails, adminUsernames: this.deps.config.adminUsernames }
  }

  private async end (session: SessionPayload, end: SessionEnd): Promise<void> {
    const { records, revocations, log } = this.deps
    try {
      await records.end(session.sid)
    } finally {
      revocations.endSession(session.sid)
    }
    log.info({ sid: session.sid, reason: end.reason, err: end.message }, 'SSO session ended by its re-validation')
    auditBackground(log, { audit: 'session-ended', user: session.u, method: 'oidc', by: 'oidc-revalidation', reason: end.reason })
  }
}

/** The IdP refused the refresh token: `invalid_grant` (RFC 6749 §5.2). */
function isRefusal (err: unknown): boolean {
  return err instanceof ResponseBodyError && err.error === 'invalid_grant'
}

/** No usable answer from the IdP: not reachable, too slow, a 5xx, too large, or not discovered yet. */
function isUnavailable (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof IdpNotReadyError || e instanceof IdpResponseTooLargeError) return true
    if (e instanceof TypeError && e.message === 'fetch failed') return true
    const code = (e as { code?: unknown }).code
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT' || code === 'ECONNREFUSED' || code === 'ECONNRESET') return true
    const status = (e as { status?: unknown }).status ?? ((e as { cause?: unknown }).cause as { status?: unknown } | undefined)?.status
    if (typeof status === 'number' && status >= 500) return true
  }
  return false
}
