// Revoked and disabled users, and ended sessions (logout), kept in memory and refreshed in the
// background so that the request path never waits on the database. A logout on this instance
// applies here at once; every other instance learns of it at its next refresh.
//
// The database failing: a refresh failure keeps the last known list, with a warning each time, so
// that signed-in users keep working through a database restart or failover. For a bounded time only
// (REVOCATION_MAX_STALENESS, measured on a monotonic clock): a revocation, a disabled user or a
// logout on another instance made meanwhile is not seen here, so past the bound the list is `stale`
// and sessions are refused (503: sessions.ts, proxy) until a refresh succeeds again. A logout here
// whose record could not be ended in the database is refused here at once and written at the first
// refresh that can (endLater), so that it reaches the other instances when the database is back.
import type { FastifyBaseLogger } from 'fastify'
import type { UserRepository } from '../db/users.js'
import type { SessionRepository } from '../db/sessions.js'
import { CLOCK_SKEW_SECONDS } from './session.js'
import { systemClock, type Clock } from '../clock.js'
import type { SessionIdentities } from './identities.js'
import { REVOCATION_MAX_STALENESS_DEFAULT } from '../config/session.js'

export class RevocationList {
  private cutoffs = new Map<number, number>()
  /** Ended sessions that have not expired yet (a copied cookie would still be within its lifetime). */
  private ended = new Set<string>()
  /** Ended here since the last successful refresh began: a refresh already under way may miss them. */
  private endedHere = new Set<string>()
  /** Ended here while the database could not record it: written at the next refresh that can. */
  private readonly pendingEnds = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  /** performance.now() when the last successful read began: the list is as of then. */
  private readSince = performance.now()
  private failures = 0
  /** The bound was crossed and said so: said once per outage. */
  private refusing = false
  private readonly listeners: Array<() => void> = []

  constructor (
    private readonly users: UserRepository,
    private readonly sessionRecords: SessionRepository,
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs = 5000,
    /** The list's age and which ended sessions are kept are read from it (timers run in real time). */
    private readonly clock: Clock = systemClock,
    /** Re-validated SSO identities (identities.ts): read on the same schedule, by the same timer. */
    private readonly identities?: Pick<SessionIdentities, 'refresh'>,
    /** REVOCATION_MAX_STALENESS: past this age the list is `stale` and sessions are refused. */
    private readonly maxStalenessMs = REVOCATION_MAX_STALENESS_DEFAULT * 1000
  ) {}

  /** Unix seconds: sessions of this user issued at or before it are refused (Infinity: disabled). */
  cutoffFor (userId: number): number | undefined {
    return this.cutoffs.get(userId)
  }

  isEnded (sessionId: string): boolean {
    return this.ended.has(sessionId)
  }

  /** Apply a change made by this process at once (other instances learn it at their next refresh). */
  set (userId: number, cutoff: number): void {
    this.cutoffs.set(userId, cutoff)
  }

  /** A logout on this instance, once its record is ended in the database: refused here from now on. */
  endSession (sessionId: string): void {
    this.ended.add(sessionId)
    this.endedHere.add(sessionId)
    this.notify()
  }

  /**
   * A logout here whose record the database could not end (it is failing): refused here from now
   * on, and its record ended at the next refresh that can write, for the other instances.
   */
  endLater (sessionId: string): void {
    this.pendingEnds.add(sessionId)
    this.endSession(sessionId)
  }

  /** Logouts waiting for the database (endLater). */
  get pendingLogouts (): number {
    return this.pendingEnds.size
  }

  /** How old the list is (ms, monotonic: a wall-clock step changes nothing). */
  get ageMs (): number {
    return performance.now() - this.readSince
  }

  get maxStalenessSeconds (): number {
    return this.maxStalenessMs / 1000
  }

  /** The last refresh failed (the database is failing): the list is getting older. */
  get refreshFailing (): boolean {
    return this.failures > 0
  }

  /** Older than REVOCATION_MAX_STALENESS: whether a session was revoked since cannot be known. */
  get stale (): boolean {
    return this.ageMs > this.maxStalenessMs
  }

  async refresh (): Promise<void> {
    // Logouts that could not be written before: now, before the read, which then sees them. A
    // database that reads but cannot write (a full disk) must not stop the read: they wait on.
    let unwritten: Error | undefined
    for (const id of this.pendingEnds) {
      try {
        await this.sessionRecords.end(id)
        this.pendingEnds.delete(id)
      } catch (err) {
        unwritten = err as Error
        break
      }
    }
    const began = performance.now()
    // Sessions ended here before this read began were already in the database: the read sees them.
    const seenByThisRead = new Set(this.endedHere)
    // Kept a little past their expiry, for instances whose clock runs behind.
    const expiringAfter = new Date(this.clock.now() - CLOCK_SKEW_SECONDS * 1000)
    const [cutoffs, ended] = await Promise.all([this.users.sessionCutoffs(), this.sessionRecords.endedSessionIds(expiringAfter), this.identities?.refresh()])
    for (const id of this.endedHere) {
      if (seenByThisRead.has(id) && !this.pendingEnds.has(id)) this.endedHere.delete(id)
      else ended.add(id)
    }
    this.cutoffs = cutoffs
    this.ended = ended
    this.readSince = began
    // (When the read fails too, the failed refresh is what gets logged.)
    if (unwritten !== undefined) this.log.warn({ err: unwritten.message, pendingLogouts: this.pendingEnds.size }, 'logouts made while the database was failing are not written yet; retrying at the next refresh')
  }

  /**
   * Run after every background refresh, successful or not, and after every logout applied here.
   * Open WebSockets and streaming responses are re-checked there, so they learn of a revocation as
   * soon as requests do, and no second timer is needed.
   */
  afterRefresh (listener: () => void): void {
    this.listeners.push(listener)
  }

  async start (): Promise<void> {
    await this.refresh()
    let running = false
    this.timer = setInterval(() => {
      // A slow database must not stack up reads (nor let an older read overwrite a newer one). A
      // read that hangs still ages the list: the bound holds without it.
      if (running) {
        this.reportStale()
        return
      }
      running = true
      const startedAt = performance.now()
      this.refresh()
        .then(() => { this.recovered() })
        .catch((err: Error) => { this.failed(err, startedAt) })
        .finally(() => { running = false; this.notify() })
    }, this.intervalMs)
    this.timer.unref()
  }

  private failed (err: Error, startedAt: number): void {
    this.failures++
    const staleSeconds = Math.round(this.ageMs / 1000)
    this.log.warn({ err: err.message, failures: this.failures, staleSeconds, maxStalenessSeconds: this.maxStalenessSeconds, pendingLogouts: this.pendingEnds.size, ms: Math.round(performance.now() - startedAt) },
      this.stale
        ? 'session revocation refresh failed; sessions are refused until a refresh succeeds'
        : 'session revocation refresh failed; keeping the previous list, sessions still accepted until it is REVOCATION_MAX_STALENESS old')
    this.reportStale()
  }

  /** Once per outage, at error level: from now on every signed-in user gets 503. */
  private reportStale (): void {
    if (this.refusing || !this.stale) return
    this.refusing = true
    this.log.error({ staleSeconds: Math.round(this.ageMs / 1000), maxStalenessSeconds: this.maxStalenessSeconds },
      'revocation list older than REVOCATION_MAX_STALENESS: refusing sessions (503) until the database answers')
  }

  private recovered (): void {
    if (this.failures === 0 && !this.refusing) return
    this.log.info({ failedRefreshes: this.failures, sessionsWereRefused: this.refusing }, this.refusing
      ? 'revocation list refreshed again; sessions are accepted again'
      : 'revocation list refreshed again')
    this.failures = 0
    this.refusing = false
  }

  private notify (): void {
    for (const listener of this.listeners) {
      // A failing listener must neither stop the others nor become an unhandled rejection.
      try { listener() } catch (err) { this.log.error({ err: (err as Error).message }, 'after-refresh listener failed') }
    }
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }
}
