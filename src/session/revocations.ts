// Revoked and disabled users, and ended sessions (logout), kept in memory and refreshed in the
// background so that the request path never waits on the database. A refresh failure keeps the
// last known list (and is logged). A logout on this instance applies here at once; every other
// instance learns of it at its next refresh.
import type { FastifyBaseLogger } from 'fastify'
import type { UserRepository } from '../db/users.js'
import type { SessionRepository } from '../db/sessions.js'
import { CLOCK_SKEW_SECONDS } from './session.js'
import { systemClock, type Clock } from '../clock.js'
import type { SessionIdentities } from './identities.js'

export class RevocationList {
  private cutoffs = new Map<number, number>()
  /** Ended sessions that have not expired yet (a copied cookie would still be within its lifetime). */
  private ended = new Set<string>()
  /** Ended here since the last successful refresh began: a refresh already under way may miss them. */
  private endedHere = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private lastRefresh = 0
  private readonly listeners: Array<() => void> = []

  constructor (
    private readonly users: UserRepository,
    private readonly sessionRecords: SessionRepository,
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs = 5000,
    /** The list's age and which ended sessions are kept are read from it (timers run in real time). */
    private readonly clock: Clock = systemClock,
    /** Re-validated SSO identities (identities.ts): read on the same schedule, by the same timer. */
    private readonly identities?: Pick<SessionIdentities, 'refresh'>
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

  get ageMs (): number {
    return this.clock.now() - this.lastRefresh
  }

  async refresh (): Promise<void> {
    // Sessions ended here before this read began were already in the database: the read sees them.
    const seenByThisRead = new Set(this.endedHere)
    // Kept a little past their expiry, for instances whose clock runs behind.
    const expiringAfter = new Date(this.clock.now() - CLOCK_SKEW_SECONDS * 1000)
    const [cutoffs, ended] = await Promise.all([this.users.sessionCutoffs(), this.sessionRecords.endedSessionIds(expiringAfter), this.identities?.refresh()])
    for (const id of this.endedHere) {
      if (seenByThisRead.has(id)) this.endedHere.delete(id)
      else ended.add(id)
    }
    this.cutoffs = cutoffs
    this.ended = ended
    this.lastRefresh = this.clock.now()
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
      // A slow database must not stack up reads (nor let an older read overwrite a newer one).
      if (running) return
      running = true
      this.refresh()
        .catch((err: Error) => { this.log.error({ err: err.message }, 'session revocation refresh failed; keeping the previous list') })
        .finally(() => { running = false; this.notify() })
    }, this.intervalMs)
    this.timer.unref()
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
