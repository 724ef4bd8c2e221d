// The throttle's decisions (src/auth/local/throttle.ts): which counters an attempt is charged to,
// their limits, how long to wait, what a success undoes, and the client address key.
import t from 'tap'
import { afterSuccess, countersFor, decide, THROTTLE, type Attempt, type Counter } from '../../src/auth/local/throttle.js'

const NOW = 1_000_000_000_000
const WINDOW_END = NOW + THROTTLE.windowSeconds * 1000

/** Run `decide` to its end with the given counts (after this attempt) per counter kind. */
function outcome (attempt: Attempt, counts: Partial<Record<'device' | 'address' | 'account' | 'username-at-address', number>>, resetAt = WINDOW_END): { counted: string[], result: ReturnType<typeof decide> } {
  const counted = new Map<string, Counter>()
  for (;;) {
    const decision = decide(attempt, counted, NOW)
    if (!('count' in decision)) return { counted: [...counted.keys()], result: decision }
    counted.set(decision.count.key, { count: counts[decision.count.kind] ?? 1, resetAt })
  }
}

const stranger: Attempt = { address: '203.0.113.7', username: 'victim' }
const remembered: Attempt = { ...stranger, deviceId: 'abc' }

t.test('an unknown browser is counted per address, per account and per username at the address, in that order', async (t) => {
  t.same(countersFor(stranger).map((c) => c.key), ['address 203.0.113.7', 'account victim', 'username-at-address victim 203.0.113.7'])
  t.same(outcome(stranger, {}), { counted: ['address 203.0.113.7', 'account victim', 'username-at-address victim 203.0.113.7'], result: { allow: true } })
})

t.test('a browser with a device cookie for the username is counted on that cookie alone', async (t) => {
  t.same(countersFor(remembered).map((c) => c.key), ['device abc'])
  t.same(outcome(remembered, { device: THROTTLE.perDevice }).result, { allow: true }, 'up to its limit')
  t.same(outcome(remembered, { device: THROTTLE.perDevice + 1 }).result, { retryAfter: THROTTLE.windowSeconds }, 'then it waits')
  t.same(outcome(remembered, { device: 1, address: 1000, account: 1000, 'username-at-address': 1000 }).result, { allow: true }, 'an attack on the account or from its address does not matter')
})

t.test('the address limit stops counting anything else', async (t) => {
  t.same(outcome(stranger, { address: THROTTLE.perAddress }).result, { allow: true })
  t.same(outcome(stranger, { address: THROTTLE.perAddress + 1 }), { counted: ['address 203.0.113.7'], result: { retryAfter: THROTTLE.windowSeconds } },
    'refused before the username counters are touched: one address cannot fill the table')
})

t.test('the username at an address: its normal limit, and a lower one while the account is under attack', async (t) => {
  t.same(outcome(stranger, { 'username-at-address': THROTTLE.perUsernameAtAddress }).result, { allow: true })
  t.same(outcome(stranger, { 'username-at-address': THROTTLE.perUsernameAtAddress + 1 }).result, { retryAfter: THROTTLE.windowSeconds })
  const underAttack = THROTTLE.accountUnderAttack + 1 // this attempt plus that many before it
  t.same(outcome(stranger, { account: underAttack - 1, 'username-at-address': THROTTLE.perUsernameAtAddressUnderAttack + 1 }).result, { allow: true }, 'not yet under attack')
  t.same(outcome(stranger, { account: underAttack, 'username-at-address': THROTTLE.perUsernameAtAddressUnderAttack }).result, { allow: true }, 'under attack: still some attempts')
  t.same(outcome(stranger, { account: underAttack, 'username-at-address': THROTTLE.perUsernameAtAddressUnderAttack + 1 }).result, { retryAfter: THROTTLE.windowSeconds }, 'but fewer')
  t.same(outcome(stranger, { account: 1_000_000 }).result, { allow: true }, 'the account alone never refuses: nobody can lock it')
})

t.test('retryAfter is the rest of the window, rounded up, at least one second', async (t) => {
  const over = { address: THROTTLE.perAddress + 1 }
  t.same(outcome(stranger, over, NOW + 1500).result, { retryAfter: 2 })
  t.same(outcome(stranger, over, NOW).result, { retryAfter: 1 }, 'a window ending now (a clock step between replicas)')
})

t.test('a success releases the attempt and forgets the owner\'s own failures, not the address\'s', async (t) => {
  t.same(afterSuccess(stranger), { release: ['address 203.0.113.7', 'account victim'], forget: ['username-at-address victim 203.0.113.7'] })
  t.same(afterSuccess(remembered), { release: [], forget: ['device abc'] })
})
