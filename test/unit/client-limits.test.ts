// The pure decisions behind the slow-client limits: who counts as one client, how many requests it
// may have in progress, and when a request body is too slow.
import t from 'tap'
import { BodyPace, ClientSlots, clientKey } from '../../src/proxy/client-limits.js'

t.test('clientKey: IPv4 as is, IPv6 by /64, IPv4-mapped as IPv4', async (t) => {
  t.equal(clientKey('203.0.113.7'), '203.0.113.7')
  t.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64')
  t.equal(clientKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'one /64, whatever the host part')
  t.equal(clientKey('2001:0DB8:0001:0002:0:0:0:9'), '2001:db8:1:2::/64', 'leading zeros and case do not matter')
  t.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64', ':: in the prefix')
  t.not(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'), 'the next /64 is another client')
  t.equal(clientKey('::1'), '0:0:0:0::/64')
  t.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'zone index dropped')
  t.equal(clientKey('::ffff:198.51.100.9'), '198.51.100.9', 'IPv4-mapped')
  t.equal(clientKey('::ffff:c633:6409'), '198.51.100.9', 'IPv4-mapped, hex spelling')
  t.equal(clientKey('64:ff9b::198.51.100.9'), '64:ff9b:0:0::/64', 'NAT64 stays IPv6')
  t.equal(clientKey('not-an-address'), 'not-an-address', 'anything else keys by itself')
})

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
