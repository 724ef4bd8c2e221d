// A per-client rate limit held in this process's memory: a fixed window per key (a client address),
// opened by the key's first hit. Memory is bounded whatever arrives: at most `maxKeys` keys are
// tracked, windows that have ended are dropped as new hits come, and when every tracked window is
// still open the oldest gives way. A flood from more addresses than that can reset an old address's
// window early, never grow the map. Pure: time is passed in.

export interface RateLimitOptions {
  /** Hits allowed per key per window. */
  limit: number
  windowMs: number
  /** Keys tracked at most. */
  maxKeys: number
}

export type RateDecision =
  | { allowed: true }
  /** `retryAfter`: whole seconds until the window ends (at least 1); `firstRefusal`: the window's first (log it). */
  | { allowed: false, retryAfter: number, firstRefusal: boolean }

interface Window {
  count: number
  /** When the window ends (ms). */
  endsAt: number
  refused: boolean
}

export class RateLimiter {
  /** In the order the windows opened (a renewed window moves to the end), so ended ones lead. */
  private readonly windows = new Map<string, Window>()
  /** Windows dropped while still open to make room (a flood from more addresses than maxKeys). */
  evicted = 0

  constructor (private readonly options: RateLimitOptions) {
    if (!(options.limit >= 1 && options.windowMs > 0 && options.maxKeys >= 1)) throw new RangeError('limit, windowMs and maxKeys must be positive')
  }

  /** Keys tracked now (never more than maxKeys). */
  get size (): number {
    return this.windows.size
  }

  /** Counts one hit of `key` at `now` (ms) and says whether it is within the limit. */
  hit (key: string, now: number): RateDecision {
    this.dropEnded(now)
    let window = this.windows.get(key)
    // A window ending further off than one window: the clock went back; start afresh rather than wait.
    if (window === undefined || window.endsAt <= now || window.endsAt - now > this.options.windowMs) {
      if (window !== undefined) this.windows.delete(key)
      else if (this.windows.size >= this.options.maxKeys) this.evictOldest()
      window = { count: 0, endsAt: now + this.options.windowMs, refused: false }
      this.windows.set(key, window)
    }
    window.count += 1
    if (window.count <= this.options.limit) return { allowed: true }
    const firstRefusal = !window.refused
    window.refused = true
    return { allowed: false, retryAfter: Math.max(1, Math.ceil((window.endsAt - now) / 1000)), firstRefusal }
  }

  /** Windows are in opening order and all as long: the ended ones are at the front. */
  private dropEnded (now: number): void {
    for (const [key, window] of this.windows) {
      if (window.endsAt > now) return
      this.windows.delete(key)
    }
  }

  private evictOldest (): void {
    const oldest = this.windows.keys().next()
    if (oldest.done === true) return
    this.windows.delete(oldest.value)
    this.evicted += 1
  }
}
