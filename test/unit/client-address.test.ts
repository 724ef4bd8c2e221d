// One client for every per-client limit: an IPv4 address, or an IPv6 /64; IPv4-mapped as IPv4.
import t from 'tap'
import { clientAddressKey } from '../../src/net/client-address.js'

t.test('client address keys', async (t) => {
  const cases: Array<[string, string]> = [
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:cb00:7107', '203.0.113.7'],
    ['0:0:0:0:0:ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:0000:0000:0000:0009', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:db8:0:0:1::', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['64:ff9b::203.0.113.7', '64:ff9b:0:0::/64'],
    ['not an address', 'not an address']
  ]
  for (const [ip, key] of cases) t.equal(clientAddressKey(ip), key, ip)
  t.not(clientAddressKey('2001:db8:1:2::1'), clientAddressKey('2001:db8:1:3::1'), 'neighbouring /64s differ')
})

t.test('clientAddressKey: IPv4 as is, IPv6 by /64, IPv4-mapped as IPv4', async (t) => {
  t.equal(clientAddressKey('203.0.113.7'), '203.0.113.7')
  t.equal(clientAddressKey('2001:db8:1:2::1'), '2001:db8:1:2::/64')
  t.equal(clientAddressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'one /64, whatever the host part')
  t.equal(clientAddressKey('2001:0DB8:0001:0002:0:0:0:9'), '2001:db8:1:2::/64', 'leading zeros and case do not matter')
  t.equal(clientAddressKey('2001:db8::1'), '2001:db8:0:0::/64', ':: in the prefix')
  t.not(clientAddressKey('2001:db8:1:3::1'), clientAddressKey('2001:db8:1:2::1'), 'the next /64 is another client')
  t.equal(clientAddressKey('::1'), '0:0:0:0::/64')
  t.equal(clientAddressKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'zone index dropped')
  t.equal(clientAddressKey('::ffff:198.51.100.9'), '198.51.100.9', 'IPv4-mapped')
  t.equal(clientAddressKey('::ffff:c633:6409'), '198.51.100.9', 'IPv4-mapped, hex spelling')
  t.equal(clientAddressKey('64:ff9b::198.51.100.9'), '64:ff9b:0:0::/64', 'NAT64 stays IPv6')
  t.equal(clientAddressKey('not-an-address'), 'not-an-address', 'anything else keys by itself')
})
