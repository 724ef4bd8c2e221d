import t from 'tap'
import { checkNewPassword, hashPassword, parsePasswordHash, verifyPassword } from '../../src/auth/local/password.js'

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
