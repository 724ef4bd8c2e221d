// Revoked and disabled users, kept in memory and refreshed in the background so that the request
// path never waits on the database. A refresh failure keeps the last known list (and is logged).
import type { FastifyBaseLogger } from 'fastify'
import type { UserRepository } from '../db/users.js'

export class RevocationList {
  private cutoffs = new Map<number, number>()
  private timer: NodeJS.Timeout | undefined
  private lastRefresh = 0
  private readonly afterRefreshListeners: Array<() => void> = []

  constructor (private readonly users: UserRepository, private readonly log: FastifyBaseLogger, private readonly intervalMs = 5000) {}

  /** Unix seconds: sessions of this user issued at or before it are refused (Infinity: disabled). */
  cutoffFor (userId: number): number | undefined {
    return this.cutoffs.get(userId)
  }

  /** Apply a change made by this process at once (other instances learn it at their next refresh). */
  set (userId: number, cutoff: number): void {
    this.cutoffs.set(userId, cutoff)
  }

  get ageMs (): number {
    return Date.now() - this.lastRefresh
  }

  async refresh (): Promise<void> {
    this.cutoffs = await this.users.sessionCutoffs()
    this.lastRefresh = Date.now()
  }

  /**
   * Run after every background refresh, successful or not. Open WebSockets are re-checked here, so
   * they learn of a revocation as soon as requests do, and no second timer is needed.
   */
  afterRefresh (listener: () => void): void {
    this.afterRefreshListeners.push(listener)
  }

  async start (): Promise<void> {
    await this.refresh()
    this.timer = setInterval(() => {
      this.refresh()
        .catch((err: Error) => { this.log.error({ err: err.message }, 'session revocation refresh failed; keeping the previous list') })
        .finally(() => { this.notify() })
    }, this.intervalMs)
    this.timer.unref()
  }

  private notify (): void {
    for (const listener of this.afterRefreshListeners) {
      // A failing listener must neither stop the others nor become an unhandled rejection.
      try { listener() } catch (err) { this.log.error({ err: (err as Error).message }, 'after-refresh listener failed') }
    }
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }
}
