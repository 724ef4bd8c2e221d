// The failed sign-in counters of src/auth/local/throttle.ts, in the database so that every replica
// counts the same attempts and a restart forgets none. Each count is one atomic upsert (SQLite and
// PostgreSQL alike), so concurrent attempts, on one replica or several, never read the same count.
// Guards against unbounded growth: expired rows are deleted as attempts come in.
import { sql } from 'kysely'
import type { Db } from './index.js'
import type { Counter, ThrottleStore } from '../auth/local/throttle.js'

/** How often (at most) one process deletes expired counters. */
const SWEEP_INTERVAL_MS = 60_000

export class LoginThrottleStore implements ThrottleStore {
  private lastSweep = 0

  constructor (private readonly db: Db) {}

  async hit (key: string, windowSeconds: number, now: number): Promise<Counter> {
    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) {
      this.lastSweep = now
      await this.sweep(now)
    }
    const expired = sql<boolean>`login_throttle.reset_at <= ${now}`
    const row = await this.db.kysely.insertInto('login_throttle')
      .values({ key, attempts: 1, reset_at: now + windowSeconds * 1000 })
      .onConflict((conflict) => conflict.column('key').doUpdateSet({
        attempts: sql<number>`case when ${expired} then 1 else login_throttle.attempts + 1 end`,
        reset_at: sql<number>`case when ${expired} then excluded.reset_at else login_throttle.reset_at end`
      }))
      .returning(['attempts', 'reset_at'])
      .executeTakeFirstOrThrow()
    return { count: Number(row.attempts), resetAt: Number(row.reset_at) }
  }

  async release (keys: string[]): Promise<void> {
    if (keys.length === 0) return
    await this.db.kysely.updateTable('login_throttle')
      .set({ attempts: sql<number>`attempts - 1` })
      .where('key', 'in', keys)
      .where('attempts', '>', 0)
      .execute()
  }

  async forget (keys: string[]): Promise<void> {
    if (keys.length === 0) return
    await this.db.kysely.deleteFrom('login_throttle').where('key', 'in', keys).execute()
  }

  /** Delete the counters whose window is over; returns how many. */
  async sweep (now: number): Promise<number> {
    const result = await this.db.kysely.deleteFrom('login_throttle').where('reset_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
