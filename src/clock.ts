// The time the gateway's rules read: session issue and expiry, revocation, the sign-in throttle's
// windows, the revocation list's age. One injectable source (AppOptions.clock) so that tests move
// time instead of sleeping across a boundary; in production it is the system clock.

export interface Clock {
  /** Milliseconds since the epoch, like Date.now(). */
  now: () => number
}

export const systemClock: Clock = { now: () => Date.now() }

/** Whole Unix seconds, what session cookies carry. */
export function unixSeconds (clock: Clock): number {
  return Math.floor(clock.now() / 1000)
}
