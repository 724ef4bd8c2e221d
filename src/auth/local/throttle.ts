// Failed sign-in throttling: guards against password guessing (from one address, at one account,
// across many accounts, or walking the addresses of one IPv6 /64) without letting anyone lock an
// account's owner out. The design is OWASP's "device cookies": a browser that signed in to a username
// before is throttled on its own budget for that username; every other attempt is throttled per
// client address and per (username, address), and failures at an account from anywhere only lower
// the per-address budget of browsers it was never used with (a slow-down, never a lock).
//
// The decisions here are pure; the counters live in the database (src/db/login-throttle.ts), so that
// replicas share them and a restart does not reset them.
import { systemClock, type Clock } from '../../clock.js'

export const THROTTLE = {
  /** Every counter is a fixed window that starts with its first attempt. */
  windowSeconds: 15 * 60,
  /** Attempts from one address (IPv6: one /64) at any usernames, by browsers without a device cookie for them. */
  perAddress: 20,
  /** Attempts at one username from one address, by browsers without a device cookie for it. */
  perUsernameAtAddress: 10,
  /** The same, while the account is under attack. */
  perUsernameAtAddressUnderAttack: 3,
  /** Attempts at one username (all addresses, no device cookie) that put the account under attack. */
  accountUnderAttack: 10,
  /** Attempts with one device cookie. */
  perDevice: 10
} as const

export interface Attempt {
  /** `clientAddressKey` (src/net/client-address.ts) of the client's address. */
  address: string
  /** The normalised username tried. */
  username: string
  /** The id of a valid device cookie for this username, when the browser sent one. */
  deviceId?: string
}

/** A counter after counting the current attempt; `resetAt` in milliseconds since the epoch. */
export interface Counter { count: number, resetAt: number }

type CounterKind = 'device' | 'address' | 'account' | 'username-at-address'
export interface CounterRef { kind: CounterKind, key: string }

/**
 * The counters an attempt is charged to, in the order they are counted and checked. Keys start with
 * their kind, and an address never holds a space, so no two counters share a key.
 */
export function countersFor (attempt: Attempt): CounterRef[] {
  if (attempt.deviceId !== undefined) return [{ kind: 'device', key: `device ${attempt.deviceId}` }]
  return [
    // The address first: once it is over its limit nothing else is counted, so one address cannot
    // fill the table with (username, address) rows.
    { kind: 'address', key: `address ${attempt.address}` },
    { kind: 'account', key: accountKey(attempt) },
    { kind: 'username-at-address', key: `username-at-address ${attempt.username} ${attempt.address}` }
  ]
}

function accountKey (attempt: Attempt): string {
  return `account ${attempt.username}`
}

export type Decision = { count: CounterRef } | { allow: true } | { retryAfter: number }

/**
 * What to do next with an attempt, given the counters counted for it so far: count the next
 * counter, let the (slow) credential check run, or refuse for `retryAfter` seconds. Counting comes
 * before checking, so concurrent attempts see each other and a burst cannot get past a limit.
 */
export function decide (attempt: Attempt, counted: ReadonlyMap<string, Counter>, now: number): Decision {
  for (const ref of countersFor(attempt)) {
    const counter = counted.get(ref.key)
    if (counter === undefined) return { count: ref }
    if (counter.count > limitOf(ref.kind, attempt, counted)) return { retryAfter: Math.max(1, Math.ceil((counter.resetAt - now) / 1000)) }
  }
  return { allow: true }
}

function limitOf (kind: CounterKind, attempt: Attempt, counted: ReadonlyMap<string, Counter>): number {
  switch (kind) {
    case 'device': return THROTTLE.perDevice
    case 'address': return THROTTLE.perAddress
    // Never a limit of its own: that would let anyone lock the account.
    case 'account': return Infinity
    case 'username-at-address': {
      const before = (counted.get(accountKey(attempt))?.count ?? 1) - 1
      return before >= THROTTLE.accountUnderAttack ? THROTTLE.perUsernameAtAddressUnderAttack : THROTTLE.perUsernameAtAddress
    }
  }
}

/**
 * After a successful sign-in: the attempt no longer counts (`release`), and the failures that were
 * the owner's own typing (this browser, or this username at this address) are forgotten (`forget`).
 * The address's other failures stay: signing in to one's own account must not reset them.
 */
export function afterSuccess (attempt: Attempt): { release: string[], forget: string[] } {
  const refs = countersFor(attempt)
  const ownTyping = (ref: CounterRef): boolean => ref.kind === 'device' || ref.kind === 'username-at-address'
  return { release: refs.filter((ref) => !ownTyping(ref)).map((ref) => ref.key), forget: refs.filter(ownTyping).map((ref) => ref.key) }
}

/** Where the counters are kept: each operation is atomic on its own. */
export interface ThrottleStore {
  /** Count one attempt on `key` (a counter whose window is over starts again at 1). */
  hit: (key: string, windowSeconds: number, now: number) => Promise<Counter>
  /** Un-count one attempt on each key. */
  release: (keys: string[]) => Promise<void>
  /** Drop these counters. */
  forget: (keys: string[]) => Promise<void>
}

export class LoginThrottle {
  constructor (private readonly store: ThrottleStore, private readonly clock: Clock = systemClock) {}

  /**
   * Count the attempt, before the credential check: 0 to go ahead (it counts as a failure until
   * `succeeded`), or the seconds to wait.
   */
  async begin (attempt: Attempt, now = this.clock.now()): Promise<number> {
    const counted = new Map<string, Counter>()
    for (;;) {
      const decision = decide(attempt, counted, now)
      if ('allow' in decision) return 0
      if ('retryAfter' in decision) return decision.retryAfter
      counted.set(decision.count.key, await this.store.hit(decision.count.key, THROTTLE.windowSeconds, now))
    }
  }

  async succeeded (attempt: Attempt): Promise<void> {
    const { release, forget } = afterSuccess(attempt)
    await this.store.release(release)
    await this.store.forget(forget)
  }
}
