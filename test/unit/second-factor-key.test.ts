// The second factors' data key, its pure parts: sealed under SECRET_KEY and bound to the deployment,
// told apart when opened by the current key, a previous one or none, and the keys derived from it
// (one per purpose, none of them the data key or a SECRET_KEY-derived key). SealedBox's keys given as
// they are, and the key index it reports.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { DATA_KEY_UNAVAILABLE_MESSAGE, dataKeyWrapper, deriveFromDataKey, openDataKey, RECOVERY_CODE_PURPOSE, sealDataKey, SecondFactorKeyUnavailableError, TOTP_SECRET_PURPOSE } from '../../src/auth/mfa/data-key.js'
import { SealedBox } from '../../src/session/sealed-box.js'
import { deriveKey } from '../../src/session/keys.js'

const A = 'secret-key-A-0123456789abcdef0123456789'
const B = 'secret-key-B-0123456789abcdef0123456789'
const C = 'secret-key-C-0123456789abcdef0123456789'

t.test('the data key: sealed under the current key, opened as current, previous, or not at all', async (t) => {
  const dataKey = randomBytes(32)
  const sealed = sealDataKey(dataKeyWrapper([A], 'dep'), 'dep', dataKey)
  t.notMatch(sealed, dataKey.toString('base64url'), 'not the key itself')
  const current = openDataKey(dataKeyWrapper([A], 'dep'), 'dep', sealed)
  t.equal(current.state, 'current')
  t.ok(current.state !== 'unopenable' && current.dataKey.equals(dataKey))
  const previous = openDataKey(dataKeyWrapper([B, A], 'dep'), 'dep', sealed)
  t.equal(previous.state, 'previous', 'opened by SECRET_KEY_PREVIOUS: due to be sealed again')
  t.ok(previous.state !== 'unopenable' && previous.dataKey.equals(dataKey), 'the same key inside')
  t.same(openDataKey(dataKeyWrapper([B], 'dep'), 'dep', sealed), { state: 'unopenable' }, 'the old key removed')
  t.same(openDataKey(dataKeyWrapper([B, C], 'dep'), 'dep', sealed), { state: 'unopenable' })
  t.same(openDataKey(dataKeyWrapper([A], 'other'), 'other', sealed), { state: 'unopenable' }, 'bound to the deployment')
  t.same(openDataKey(dataKeyWrapper([A], 'dep'), 'dep', sealed.slice(0, -2) + 'AA'), { state: 'unopenable' }, 'altered')
  t.same(openDataKey(dataKeyWrapper([A], 'dep'), 'dep', ''), { state: 'unopenable' })
  // Something the right key opens that is not a 32-byte key is not used as one.
  const short = dataKeyWrapper([A], 'dep').seal('dep', randomBytes(16).toString('base64url'))
  t.same(openDataKey(dataKeyWrapper([A], 'dep'), 'dep', short), { state: 'unopenable' }, 'not a 32-byte key')
  // Another purpose's key (a refresh token's, a session's) does not open it.
  t.equal(new SealedBox([A], 'dep', 'refresh-token-v1', 'second-factor key').open('dep', sealed), undefined)
})

t.test('keys derived from the data key: one per purpose, none of them SECRET_KEY\'s', async (t) => {
  const dataKey = randomBytes(32)
  const totp = deriveFromDataKey(dataKey, TOTP_SECRET_PURPOSE)
  const recovery = deriveFromDataKey(dataKey, RECOVERY_CODE_PURPOSE)
  t.equal(totp.length, 32)
  t.ok(totp.equals(deriveFromDataKey(dataKey, TOTP_SECRET_PURPOSE)), 'deterministic')
  t.notOk(totp.equals(recovery), 'separate purposes')
  t.notOk(totp.equals(dataKey))
  t.notOk(totp.equals(deriveFromDataKey(randomBytes(32), TOTP_SECRET_PURPOSE)), 'another data key, another key')
  t.notOk(totp.equals(deriveKey(A, 'dep', TOTP_SECRET_PURPOSE)), 'not the old SECRET_KEY-derived key')
})

t.test('SealedBox over given keys: the first seals, every one opens, and it says which', async (t) => {
  const k1 = randomBytes(32)
  const k2 = randomBytes(32)
  const sealed = SealedBox.withKeys([k1], 'totp secret').seal('7', 'JBSWY3DPEHPK3PXP')
  t.same(SealedBox.withKeys([k1], 'totp secret').openWithKeyIndex('7', sealed), { plaintext: 'JBSWY3DPEHPK3PXP', keyIndex: 0 })
  t.same(SealedBox.withKeys([k2, k1], 'totp secret').openWithKeyIndex('7', sealed), { plaintext: 'JBSWY3DPEHPK3PXP', keyIndex: 1 })
  t.equal(SealedBox.withKeys([k2], 'totp secret').open('7', sealed), undefined)
  t.equal(SealedBox.withKeys([k1], 'refresh token').open('7', sealed), undefined, 'the label is bound')
  t.equal(SealedBox.withKeys([k1], 'totp secret').open('8', sealed), undefined, 'the record is bound')
  t.throws(() => SealedBox.withKeys([], 'x'), /32-byte key/)
  t.throws(() => SealedBox.withKeys([randomBytes(16)], 'x'), /32-byte key/)
})

t.test('the failure names both fixes', async (t) => {
  const error = new SecondFactorKeyUnavailableError()
  t.equal(error.message, DATA_KEY_UNAVAILABLE_MESSAGE)
  t.match(error.message, 'SECRET_KEY_PREVIOUS')
  t.match(error.message, 'authgate users mfa-reset')
  t.notMatch(error.message, /SPEC|\.\.\/shared/)
})
