// The in-memory per-client rate limit (src/net/rate-limit.ts) behind OIDC_RATE_LIMIT: a fixed window
// per key, one refusal per window flagged for the log, Retry-After to the window's end, and memory
// bounded by maxKeys whatever the keys.
import t from 'tap'
import { RateLimiter } from '../../src/net/rate-limit.js'

const T0 = 1_000_000_000_000

t.test('up to the limit per window, then refused until the window ends', async (t) => {
  const limiter = new RateLimiter({ limit: 3, windowMs: 60_000, maxKeys: 100 })
  for (let i = 0; i < 3; i++) t.same(limiter.hit('a', T0 + i * 1000), { allowed: true }, `hit ${i + 1}`)
  t.same(limiter.hit('a', T0 + 10_000), { allowed: false, retryAfter: 50, firstRefusal: true }, 'the fourth: refused, first of the window')
  t.same(limiter.hit('a', T0 + 59_500), { allowed: false, retryAfter: 1, firstRefusal: false }, 'later ones are not the first; Retry-After at least 1')
  t.same(limiter.hit('b', T0 + 10_000), { allowed: true }, 'another key has its own budget')
  t.same(limiter.hit('a', T0 + 60_000), { allowed: true }, 'a new window when the old one ends')
  t.same(limiter.hit('a', T0 + 60_001), { allowed: true })
  t.same(limiter.hit('a', T0 + 60_002), { allowed: true })
  t.same(limiter.hit('a', T0 + 60_003), { allowed: false, retryAfter: 60, firstRefusal: true }, 'and its first refusal is flagged again')
})

t.test('Retry-After rounds up to whole seconds', async (t) => {
  const limiter = new RateLimiter({ limit: 1, windowMs: 60_000, maxKeys: 10 })
  limiter.hit('a', T0)
  t.same(limiter.hit('a', T0 + 100), { allowed: false, retryAfter: 60, firstRefusal: true })
  t.same(limiter.hit('a', T0 + 58_001), { allowed: false, retryAfter: 2, firstRefusal: false })
})

t.test('ended windows are dropped as hits come: the map follows the active keys', async (t) => {
  const limiter = new RateLimiter({ limit: 5, windowMs: 1000, maxKeys: 1000 })
  for (let i = 0; i < 500; i++) limiter.hit(`k${i}`, T0)
  t.equal(limiter.size, 500)
  limiter.hit('late', T0 + 1000)
  t.equal(limiter.size, 1, 'the 500 ended windows went with the next hit')
  t.equal(limiter.evicted, 0, 'dropped as ended, not evicted')
})

t.test('never more than maxKeys: a flood of new keys evicts the oldest open windows', async (t) => {
  const limiter = new RateLimiter({ limit: 2, windowMs: 60_000, maxKeys: 100 })
  limiter.hit('victim', T0)
  limiter.hit('victim', T0)
  t.equal(limiter.hit('victim', T0).allowed, false, 'victim is at its limit')
  let allowed = 0
  let largest = 0
  for (let i = 0; i < 10_000; i++) {
    if (limiter.hit(`flood-${i}`, T0 + i).allowed) allowed++
    largest = Math.max(largest, limiter.size)
  }
  t.equal(allowed, 10_000, 'each flood key once: within its own limit')
  t.equal(largest, 100, 'never more than maxKeys at any point')
  t.equal(limiter.size, 100, 'capped')
  t.equal(limiter.evicted, 10_000 + 1 - 100, 'the oldest gave way')
  // The cost of the bound: an evicted key starts afresh. It is still limited within its new window.
  t.same(limiter.hit('victim', T0 + 20_000), { allowed: true })
  limiter.hit('victim', T0 + 20_000)
  t.equal(limiter.hit('victim', T0 + 20_000).allowed, false, 'limited again')
})

t.test('a renewed window moves to the back of the eviction order', async (t) => {
  const limiter = new RateLimiter({ limit: 1, windowMs: 1000, maxKeys: 2 })
  limiter.hit('a', T0)
  limiter.hit('b', T0 + 500)
  limiter.hit('a', T0 + 1200) // 'a' renewed (and 'a' is no longer first in line); 'b' still open
  t.equal(limiter.hit('a', T0 + 1300).allowed, false, 'a is at its limit in its new window')
  limiter.hit('c', T0 + 1400) // full: the oldest open window is b's
  t.equal(limiter.hit('a', T0 + 1400).allowed, false, 'a was kept')
  t.same(limiter.hit('b', T0 + 1400), { allowed: true }, 'b was evicted: a fresh window')
})

t.test('a clock that goes back does not stretch a window', async (t) => {
  const limiter = new RateLimiter({ limit: 1, windowMs: 60_000, maxKeys: 10 })
  limiter.hit('a', T0)
  t.equal(limiter.hit('a', T0 + 1000).allowed, false)
  t.same(limiter.hit('a', T0 - 3_600_000), { allowed: true }, 'an hour back: a fresh window, not an hour\'s wait')
})

t.test('refuses nonsense options', async (t) => {
  t.throws(() => new RateLimiter({ limit: 0, windowMs: 1000, maxKeys: 1 }), RangeError)
  t.throws(() => new RateLimiter({ limit: 1, windowMs: 0, maxKeys: 1 }), RangeError)
  t.throws(() => new RateLimiter({ limit: 1, windowMs: 1000, maxKeys: 0 }), RangeError)
})
