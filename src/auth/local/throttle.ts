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

  recordSuccess (keys: string[]): void {
    for (const key of keys) this.failures.delete(key)
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
