import t from 'tap'
import { checkNewPassword, hashPassword, parsePasswordHash, verifyPassword } from '../../src/auth/local/password.js'
import { LoginThrottle } from '../../src/auth/local/throttle.js'

t.test('scrypt hashes', async (t) => {
  const hash = await hashPassword('correct horse battery staple')
  t.match(hash, /^scrypt\$15\$8\$1\$[\w-]+\$[\w-]{43}$/)
  t.not(await hashPassword('correct horse battery staple'), hash, 'salted')
  t.ok(await verifyPassword('correct horse battery staple', hash))
  t.notOk(await verifyPassword('correct horse battery stapl', hash))
  t.notOk(await verifyPassword('', hash))
  t.notOk(await verifyPassword('anything', undefined), 'unknown user')
  t.notOk(await verifyPassword('anything', null), 'user without password')
  t.notOk(await verifyPassword('anything', 'plaintext'), 'not a hash')
  t.equal(parsePasswordHash(hash.replace('$15$', '$30$')), undefined, 'cost beyond bounds refused')
  t.ok(await verifyPassword('Å', await hashPassword('A\u030a')), 'unicode normalised (NFC)')
})

t.test('new password rules', async (t) => {
  t.ok(checkNewPassword('short'))
  t.equal(checkNewPassword('long enough'), undefined)
  t.ok(checkNewPassword('x'.repeat(2000)))
})

t.test('throttle', async (t) => {
  const throttle = new LoginThrottle({ maxFailures: 3, windowSeconds: 60, maxKeys: 5 })
  const keys = ['ip:1', 'user:a']
  for (let i = 0; i < 3; i++) { t.equal(throttle.retryAfter(keys, 0), 0); throttle.recordFailure(keys, 0) }
  t.equal(throttle.retryAfter(keys, 1000), 59)
  t.equal(throttle.retryAfter(['ip:2', 'user:a'], 1000), 59, 'the username is throttled from any address')
  t.equal(throttle.retryAfter(keys, 61_000), 0, 'window over')
  throttle.recordFailure(keys, 0); throttle.recordSuccess(keys)
  t.equal(throttle.retryAfter(keys, 0), 0, 'success clears')
  t.equal(throttle.begin(keys, 0), 0); t.equal(throttle.begin(keys, 0), 0); t.equal(throttle.begin(keys, 0), 0)
  t.equal(throttle.begin(keys, 0), 60, 'begin counts before the check: the fourth concurrent attempt waits')
  throttle.recordSuccess(keys, ['user:a'])
  t.equal(throttle.retryAfter(['user:a'], 0), 0, 'a success forgets the account\'s failures')
  t.equal(throttle.retryAfter(['ip:1'], 0), 0, 'and no longer counts itself')
  t.equal(throttle.begin(['ip:1'], 0), 0, 'but the address keeps the failures of the other two attempts')
  t.equal(throttle.begin(['ip:1'], 0), 60, 'so one more reaches the limit')
  for (let i = 0; i < 20; i++) throttle.recordFailure([`ip:${i}`], 0)
  t.equal(throttle.retryAfter(['ip:0'], 0), 0, 'memory bounded: oldest dropped')
})
