// Failed sign-in throttling, in memory: per client address and per username, so neither a single
// client guessing many accounts nor many clients guessing one account get far.

export interface ThrottleOptions { maxFailures: number, windowSeconds: number, maxKeys?: number }

export class LoginThrottle {
  private readonly failures = new Map<string, { count: number, resetAt: number }>()

  constructor (private readonly options: ThrottleOptions) {}

  /** Seconds to wait before another attempt is allowed for any of these keys, or 0. */
  retryAfter (keys: string[], now = Date.now()): number {
    let wait = 0
    for (const key of keys) {
      const entry = this.failures.get(key)
      if (entry === undefined) continue
      if (entry.resetAt <= now) { this.failures.delete(key); continue }
      if (entry.count >= this.options.maxFailures) wait = Math.max(wait, Math.ceil((entry.resetAt - now) / 1000))
    }
    return wait
  }

  recordFailure (keys: string[], now = Date.now()): void {
    for (const key of keys) {
      const entry = this.failures.get(key)
      if (entry === undefined || entry.resetAt <= now) {
        this.failures.set(key, { count: 1, resetAt: now + this.options.windowSeconds * 1000 })
      } else {
        entry.count++
      }
    }
    this.evict(now)
  }

  /**
   * Check and count in one step, before the (slow) credential check: 0 and the attempt counts as a
   * failure until `recordSuccess`, or the seconds to wait (nothing counted). Concurrent attempts thus
   * see each other, so a burst cannot get more checks than the limit.
   */
  begin (keys: string[], now = Date.now()): number {
    const wait = this.retryAfter(keys, now)
    if (wait === 0) this.recordFailure(keys, now)
    return wait
  }

  /**
   * An attempt counted by `begin` succeeded: it no longer counts for any of `keys`, and the failures
   * of `reset` (the account that was signed in to) are forgotten. Other keys (the client's address)
   * keep their earlier failures, so signing in to one's own account does not reset them.
   */
  recordSuccess (keys: string[], reset: string[] = keys): void {
    for (const key of keys) {
      const entry = this.failures.get(key)
      if (entry !== undefined && --entry.count <= 0) this.failures.delete(key)
    }
    for (const key of reset) this.failures.delete(key)
  }

  // Bounded memory under a flood of distinct keys: drop expired entries, then the oldest.
  private evict (now: number): void {
    const max = this.options.maxKeys ?? 100_000
    if (this.failures.size <= max) return
    for (const [key, entry] of this.failures) if (entry.resetAt <= now) this.failures.delete(key)
    for (const key of this.failures.keys()) {
      if (this.failures.size <= max) break
      this.failures.delete(key)
    }
  }
}
