// Sessions for the whole gateway: the encrypted cookie (@fastify/secure-session) pointing to a
// server-side record, its name and attributes, the CSRF cookie of the gateway's forms, and the one
// place that decides "signed in".
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import secureSession from '@fastify/secure-session'
import { deriveKey, deriveKeys } from './keys.js'
import { csrfTokenFor, isCsrfTokenValid, newCsrfSecret } from './csrf.js'
import { newSessionId, newSessionPayload, parseSessionPayload, sessionProblem, type LoginMethod, type SecondFactorKind, type SessionPayload, type SessionRefusal, type SessionUser } from './session.js'
import type { RevocationList } from './revocations.js'
import type { EndedSession, IdpLogoutTarget, SessionRepository } from '../db/sessions.js'
import { fitSessionPayload, SessionTooLargeError } from './budget.js'
import { systemClock, unixSeconds, type Clock } from '../clock.js'
import type { SessionIdentities } from './identities.js'
import type { RefreshTokenCipher } from './refresh-token-cipher.js'
import { isDatabaseUnavailable } from '../db/unavailable.js'

declare module '@fastify/secure-session' {
  interface SessionData { s: SessionPayload }
}

export interface SessionSettings {
  secretKeys: string[]
  /** This deployment's id (src/db/sessions.ts): mixed into every key, see keys.ts. */
  deploymentId: string
  secure: boolean
  maxAge: number
  /** The SSO provider ids of OIDC_PROVIDERS (empty without it): sessions of any other are refused. */
  providers?: ReadonlySet<string>
}

/** `__Host-` when Secure: the browser then refuses the cookie from subdomains and other paths. */
export function cookieNames (secure: boolean): { session: string, csrf: string, oidcPrefix: string, device: string } {
  const prefix = secure ? '__Host-authgate' : 'authgate'
  return { session: prefix, csrf: `${prefix}_csrf`, oidcPrefix: `${prefix}_oidc_`, device: `${prefix}_device` }
}

/** Every cookie the gateway sets, in any configuration: never forwarded to the upstream. */
export function isGatewayCookie (name: string): boolean {
  return /^(__Host-)?authgate(_|$)/.test(name)
}

/**
 * A session read earlier and checked again: still current, or why it no longer is (also
 * `identity-changed`: a re-validation gave it another identity since, see identities.ts).
 */
export type SessionRecheck = { ok: true, session: SessionPayload } | { ok: false, reason: SessionRefusal | 'identity-changed' }

/**
 * A request's session, or why it has none (`absent`: no session cookie came with the request).
 * `unverifiable` carries the session: it is not over, only not to be trusted now (logout still ends it).
 */
export type SessionCheck = { ok: true, session: SessionPayload } | { ok: false, reason: Exclude<SessionRefusal, 'unverifiable'> | 'absent' } | { ok: false, reason: 'unverifiable', session: SessionPayload }

export interface SessionDeps {
  /** Revoked users and ended sessions, kept current in the background. */
  revocations: Pick<RevocationList, 'cutoffFor' | 'isEnded' | 'endSession' | 'endLater' | 'stale'>
  /** The server-side records that logout ends. */
  records: SessionRepository
  /** Told why a cookie that came with a request was not a session (for the metrics). */
  refused?: (reason: SessionRefusal) => void
  /** Issue times and expiry are read from it (default: the system clock). */
  clock?: Clock
  /** SSO sessions' identities as re-validated with the IdP: they replace the cookie's. */
  identities?: Pick<SessionIdentities, 'apply' | 'versionOf'>
  /** Seals the IdP's refresh token into the session's record (none: refresh tokens are not kept). */
  refreshTokens?: RefreshTokenCipher
}

export class Sessions {
  readonly names: ReturnType<typeof cookieNames>
  private readonly csrfKey: Buffer
  private readonly revocations: SessionDeps['revocations']
  private readonly records: SessionRepository
  private readonly refused: (reason: SessionRefusal) => void
  private readonly clock: Clock
  private readonly identities: SessionDeps['identities']
  private readonly refreshTokens: RefreshTokenCipher | undefined

  constructor (private readonly settings: SessionSettings, deps: SessionDeps) {
    this.names = cookieNames(settings.secure)
    this.csrfKey = deriveKey(settings.secretKeys[0]!, settings.deploymentId, 'csrf-v1')
    this.revocations = deps.revocations
    this.records = deps.records
    this.refused = deps.refused ?? (() => {})
    this.clock = deps.clock ?? systemClock
    this.identities = deps.identities
    this.refreshTokens = deps.refreshTokens
  }

  async register (app: FastifyInstance): Promise<void> {
    await app.register(secureSession, {
      sessionName: 'session',
      cookieName: this.names.session,
      // The first key encrypts; all of them decrypt (SECRET_KEY_PREVIOUS during rotation).
      key: deriveKeys(this.settings.secretKeys, this.settings.deploymentId, 'session-cookie-v1'),
      expiry: this.settings.maxAge,
      cookie: this.cookieOptions(this.settings.maxAge)
    })
  }

  cookieOptions (maxAge: number): { path: string, httpOnly: boolean, secure: boolean, sameSite: 'lax', maxAge: number } {
    return { path: '/', httpOnly: true, secure: this.settings.secure, sameSite: 'lax', maxAge }
  }

  /**
   * This request's session, or why it has none: `absent` when no session cookie came with it, else
   * the refusal (undecryptable, malformed, expired, ended, revoked, a disabled user, ...), which is
   * also counted (the `refused` callback). `unverifiable` (the revocation list is too old, see
   * session.ts) only for a session that would otherwise be one. Never throws: anything unexpected is a refusal.
   */
  check (request: FastifyRequest): SessionCheck {
    const value = request.session?.get('s')
    const payload = parseSessionPayload(value)
    if (payload === undefined) {
      // No session: an empty one when no cookie came, or when @fastify/secure-session could not use it.
      if (request.cookies?.[this.names.session] === undefined) return { ok: false, reason: 'absent' }
      return this.refuse(value === undefined ? 'unreadable' : 'malformed')
    }
    const problem = this.problem(payload)
    if (problem === 'unverifiable') {
      this.refused(problem)
      return { ok: false, reason: problem, session: payload }
    }
    if (problem !== undefined) return this.refuse(problem)
    return { ok: true, session: this.identities?.apply(payload) ?? payload }
  }

  /**
   * A session read earlier, checked again with the same rules: open WebSockets and streams are
   * re-checked with this. Not counted as a refusal (no cookie came: the request did, earlier).
   */
  recheck (payload: SessionPayload): SessionRecheck {
    const problem = this.problem(payload)
    if (problem !== undefined) return { ok: false, reason: problem }
    // Admitted with an identity the IdP has since changed: what it carries upstream is out of date.
    if ((this.identities?.versionOf(payload.sid) ?? 0) > (payload.iv ?? 0)) return { ok: false, reason: 'identity-changed' }
    return { ok: true, session: payload }
  }

  private refuse (reason: Exclude<SessionRefusal, 'unverifiable'>): { ok: false, reason: Exclude<SessionRefusal, 'unverifiable'> } {
    this.refused(reason)
    return { ok: false, reason }
  }

  private problem (payload: SessionPayload): SessionRefusal | undefined {
    const problem = sessionProblem(payload, unixSeconds(this.clock), this.settings.maxAge, {
      revokedBefore: this.revocations.cutoffFor(payload.uid),
      ended: this.revocations.isEnded(payload.sid),
      providers: this.settings.providers
    })
    // What the list already says stands (an ended session stays ended); the rest cannot be vouched for.
    if (problem === undefined && this.revocations.stale === true) return 'unverifiable'
    return problem
  }

  /**
   * Replace whatever the browser had with a new session (a fresh cookie and a new record: no
   * fixation); the session it replaces is ended, so a copy of its cookie is refused too. An ID token
   * that does not fit in one cookie (see budget.ts) is left out, and logged; an identity that does
   * not fit throws SessionTooLargeError, nothing started. An SSO sign-in's refresh token is kept,
   * encrypted, in the record (never in the cookie) for re-validation.
   */
  async start (request: FastifyRequest, user: SessionUser, method: LoginMethod, extra: { idToken?: string, refreshToken?: string, idpSession?: { issuer: string, sid: string | undefined }, provider?: string, secondFactor?: SecondFactorKind, enrolmentPending?: boolean } = {}): Promise<SessionPayload> {
    const replaced = this.check(request)
    const now = unixSeconds(this.clock)
    const full = newSessionPayload(newSessionId(), user, method, this.settings.maxAge, now, { idToken: extra.idToken, provider: extra.provider, secondFactor: extra.secondFactor, enrolmentPending: extra.enrolmentPending })
    const fitted = fitSessionPayload(this.names.session, full)
    if (!fitted.fits) throw new SessionTooLargeError(fitted.bytes, fitted.budget, fitted.groups)
    const { payload, droppedIdToken } = fitted
    if (droppedIdToken) request.log.warn({ username: user.username }, 'session cookie would exceed 4 KB: ID token not kept (logout sends client_id instead of id_token_hint)')
    const sealedRefreshToken = extra.refreshToken !== undefined ? this.refreshTokens?.encrypt(payload.sid, extra.refreshToken) : undefined
    await this.records.create({
      id: payload.sid,
      userId: user.id,
      loginMethod: method,
      createdAt: new Date(now * 1000),
      expiresAt: new Date(payload.exp * 1000),
      oidcIssuer: extra.idpSession?.issuer ?? null,
      idpSessionId: extra.idpSession?.sid ?? null,
      ...(sealedRefreshToken !== undefined ? { sealedRefreshToken } : {})
    })
    if (replaced.ok) await this.endRecord(replaced.session.sid, request.log)
    request.session.regenerate()
    request.session.set('s', payload)
    return payload
  }

  /**
   * Sign out: the browser's cookie is deleted and the session's record ended, so that a copy of the
   * cookie is refused too: here at once, by the other instances at their next revocation refresh.
   */
  async end (request: FastifyRequest, session: SessionPayload | undefined): Promise<void> {
    request.session.delete()
    if (session !== undefined) await this.endRecord(session.sid, request.log)
  }

  /**
   * The IdP says its session (or every session of a subject) ended: the gateway sessions it opened
   * end, here at once (open WebSockets and streams too), on the other instances at their next
   * revocation refresh. Returns the sessions ended (none when none was open).
   */
  async endIdpSessions (target: IdpLogoutTarget): Promise<EndedSession[]> {
    const ended = await this.records.endIdpSessions(target, new Date(this.clock.now()))
    for (const { id } of ended) this.revocations.endSession(id)
    return ended
  }

  /** endIdpSessions for a back-channel logout token, whose id is recorded in the same transaction. */
  async endForLogoutToken (token: { issuer: string, jti: string, expiresAt: number }, target: IdpLogoutTarget): Promise<{ replayed: true } | { replayed: false, ended: EndedSession[] }> {
    const result = await this.records.endForLogoutToken(token, target, new Date(this.clock.now()))
    if (!result.replayed) for (const { id } of result.ended) this.revocations.endSession(id)
    return result
  }

  /**
   * End a session's record. The database failing does not fail a logout: the session is refused
   * here at once and its record ended when the database answers again (RevocationList.endLater).
   */
  private async endRecord (sessionId: string, log?: FastifyRequest['log']): Promise<void> {
    try {
      await this.records.end(sessionId)
    } catch (err) {
      if (!isDatabaseUnavailable(err)) {
        // A failure that is not the database's state (a bug): it goes on to the caller, and this
        // instance refuses the session all the same.
        this.revocations.endSession(sessionId)
        throw err
      }
      this.revocations.endLater(sessionId)
      log?.warn({ err: (err as Error).message }, 'logout: the database is unavailable; the session is refused here now, and its record is ended when the database answers (other instances refuse it from then)')
      return
    }
    this.revocations.endSession(sessionId)
  }

  /** The sessions (ended or not) that this IdP session opened. */
  async idsOfIdpSession (issuer: string, sid: string): Promise<string[]> {
    return await this.records.idsOfIdpSession(issuer, sid)
  }

  /** The sessions (ended or not) of this subject from this issuer whose ID token had no `sid`. */
  async idsOfSidlessSessionsOfSubject (issuer: string, sub: string): Promise<string[]> {
    return await this.records.idsOfSidlessSessionsOfSubject(issuer, sub)
  }

  /** The CSRF token for this browser's forms, setting the browser's CSRF cookie when it has none. */
  csrfToken (request: FastifyRequest, reply: FastifyReply): string {
    let secret = request.cookies[this.names.csrf]
    if (secret === undefined || !/^[\w-]{43}$/.test(secret)) {
      secret = newCsrfSecret()
      reply.setCookie(this.names.csrf, secret, { path: '/', httpOnly: true, secure: this.settings.secure, sameSite: 'lax' })
    }
    return csrfTokenFor(this.csrfKey, secret)
  }

  isCsrfValid (request: FastifyRequest, token: unknown): boolean {
    return isCsrfTokenValid(this.csrfKey, request.cookies[this.names.csrf], token)
  }
}
