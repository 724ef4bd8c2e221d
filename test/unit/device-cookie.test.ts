// Device cookies (src/auth/local/device-cookie.ts): valid only unaltered, unexpired, signed with a
// current or previous key, and for the username they were issued for.
import t from 'tap'
import { deriveKey } from '../../src/session/keys.js'
import { DEVICE_COOKIE_MAX_AGE, deviceIdFor, newDeviceCookie } from '../../src/auth/local/device-cookie.js'

const key = deriveKey('k'.repeat(32), 'deployment', 'device-cookie-v1')
const previous = deriveKey('p'.repeat(32), 'deployment', 'device-cookie-v1')
const NOW = 1_800_000_000

t.test('a cookie names its username and carries a random id', async (t) => {
  const cookie = newDeviceCookie(key, 'alice', NOW)
  t.match(cookie, /^[\w-]+\.[\w-]{22}\.\d+\.[\w-]{43}$/)
  const id = deviceIdFor([key], cookie, 'alice', NOW)
  t.match(id, /^[\w-]{22}$/)
  t.not(deviceIdFor([key], newDeviceCookie(key, 'alice', NOW), 'alice', NOW), id, 'every sign-in gets a new id')
  t.equal(deviceIdFor([key], newDeviceCookie(key, 'ökonom', NOW), 'ökonom', NOW)?.length, 22, 'any username')
})

t.test('refused: another username, expired, altered, another key, malformed', async (t) => {
  const cookie = newDeviceCookie(key, 'alice', NOW)
  const [name, id, expires, tag] = cookie.split('.') as [string, string, string, string]
  t.equal(deviceIdFor([key], cookie, 'bob', NOW), undefined, 'for another username')
  t.equal(deviceIdFor([key], cookie, 'alice', NOW + DEVICE_COOKIE_MAX_AGE), undefined, 'expired')
  t.ok(deviceIdFor([key], cookie, 'alice', NOW + DEVICE_COOKIE_MAX_AGE - 1), 'valid until then')
  t.equal(deviceIdFor([key], [Buffer.from('bob').toString('base64url'), id, expires, tag].join('.'), 'bob', NOW), undefined, 'username swapped')
  t.equal(deviceIdFor([key], [name, id, String(Number(expires) + 1000), tag].join('.'), 'alice', NOW), undefined, 'expiry extended')
  t.equal(deviceIdFor([key], [name, 'A'.repeat(22), expires, tag].join('.'), 'alice', NOW), undefined, 'id swapped')
  t.equal(deviceIdFor([previous], cookie, 'alice', NOW), undefined, 'another key')
  for (const bad of [undefined, 42, '', 'a.b.c', `${cookie}.x`, cookie.slice(0, -1), `${name}.${id}.-1.${tag}`, 'x'.repeat(600)]) {
    t.equal(deviceIdFor([key], bad, 'alice', NOW), undefined, `malformed: ${String(bad).slice(0, 20)}`)
  }
})

t.test('a cookie signed with a previous SECRET_KEY stays valid during rotation', async (t) => {
  const old = newDeviceCookie(previous, 'alice', NOW)
  t.ok(deviceIdFor([key, previous], old, 'alice', NOW))
})
