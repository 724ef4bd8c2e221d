// The pure decisions behind the slow-client limits: who counts as one client, how many requests it
// may have in progress, and when a request body is too slow.
import t from 'tap'
import { BodyPace, ClientSlots } from '../../src/proxy/client-limits.js'

t.test('ClientSlots: at most `limit` per key, released one by one', async (t) => {
  const slots = new ClientSlots(2)
  t.ok(slots.tryAcquire('a'))
  t.ok(slots.tryAcquire('a'))
  t.notOk(slots.tryAcquire('a'), 'the third is refused')
  t.ok(slots.tryAcquire('b'), 'other keys are independent')
  slots.release('a')
  t.equal(slots.held('a'), 1)
  t.ok(slots.tryAcquire('a'), 'a released slot can be taken again')
  slots.release('a'); slots.release('a')
  t.equal(slots.held('a'), 0)
  slots.release('a')
  t.equal(slots.held('a'), 0, 'never below zero')
  t.ok(slots.tryAcquire('a') && slots.tryAcquire('a') && !slots.tryAcquire('a'), 'and still limited after an extra release')
})

t.test('BodyPace: idle when no byte arrives for idleMs', async (t) => {
  const pace = new BodyPace({ idleMs: 1000, minBytesPerSecond: 0 }, 0)
  t.equal(pace.verdict(999), undefined)
  t.equal(pace.verdict(1000), 'idle')
  pace.received(1, 1000)
  t.equal(pace.verdict(1999), undefined, 'a byte restarts the idle clock')
  t.equal(pace.verdict(60_000), 'idle')
})

t.test('BodyPace: too slow when a window averages below the minimum rate', async (t) => {
  const limits = { idleMs: 1000, minBytesPerSecond: 100 }
  const trickle = new BodyPace(limits, 0)
  for (let ms = 200; ms < 1000; ms += 200) { trickle.received(1, ms); t.equal(trickle.verdict(ms), undefined, 'not judged within the first window') }
  trickle.received(1, 1000)
  t.equal(trickle.verdict(1000), 'too-slow', '5 bytes in a second where 100 are required')

  const steady = new BodyPace(limits, 0)
  for (let ms = 250; ms <= 5000; ms += 250) {
    steady.received(30, ms)
    t.equal(steady.verdict(ms), undefined)
  }
  t.pass('120 bytes/s for 5 s passes every window')

  const burstThenTrickle = new BodyPace(limits, 0)
  burstThenTrickle.received(10_000, 100)
  t.equal(burstThenTrickle.verdict(1000), undefined, 'a fast first window')
  burstThenTrickle.received(10, 1500)
  t.equal(burstThenTrickle.verdict(2000), 'too-slow', 'does not excuse a slow second one')
})

t.test('BodyPace: time the gateway held the client back is not counted against it', async (t) => {
  const pace = new BodyPace({ idleMs: 1000, minBytesPerSecond: 100 }, 0)
  pace.received(50, 100)
  pace.heldBack(5000)
  t.equal(pace.verdict(5900), undefined, 'the idle clock restarts when the gateway resumes reading')
  pace.received(200, 5950)
  t.equal(pace.verdict(6000), undefined, 'and so does the rate window')
  t.equal(pace.verdict(7000), 'idle')
})
