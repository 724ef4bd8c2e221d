import t from 'tap'
import { createHmac } from 'node:crypto'
import { encodeHeaderValue, IdentitySigner, isGatewayHeader, signIdentity } from '../../src/identity/headers.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const SECRET = 'x'.repeat(40)
const alice = { username: 'alice', isAdmin: true, email: 'alice@example.com', fullName: 'Alice Ä. Smith', groups: ['admins', 'a,b'] }

/** Written from the text of docs/PROTOCOL.md#the-signature alone, independently of src/: the verifier an upstream would write. */
function specVerify (h: Record<string, string>, secret: string, now: number): boolean {
  const canonical = ['v1', h['x-auth-timestamp'], h['x-user'], h['x-admin'], h['x-email'] ?? '', h['x-full-name'] ?? '', h['x-groups'] ?? ''].join('\n')
  const mac = 'v1=' + createHmac('sha256', secret).update(canonical).digest('hex')
  return mac === h['x-auth-signature'] && Math.abs(now - Number(h['x-auth-timestamp'])) <= 60
}

t.test('header variants are recognised however they are spelled', async (t) => {
  for (const name of ['X-User', 'x-user', 'X_USER', 'x_user', 'X.User', 'x.user', 'X-uSeR', 'x-full_name', 'X.Full.Name', 'X-AUTH-SIGNATURE', 'x_auth_timestamp', 'X-Identity-Assertion', 'x-groups', 'X-Admin', 'x.email']) {
    t.ok(isGatewayHeader(name), name)
  }
  for (const name of ['x-users', 'x-user-agent', 'user', 'x-forwarded-user', 'x-admin2', 'authorization']) {
    t.notOk(isGatewayHeader(name), name)
  }
  const names = ['x-user', 'x_user', 'x.user', 'X-Admin', 'accept', 'x-user-agent', 'X_USER']
  t.same(names.filter((name) => !isGatewayHeader(name)), ['accept', 'x-user-agent'])
})

t.test('values are encoded exactly as encodeURIComponent', async (t) => {
  t.equal(encodeHeaderValue('Alice Ä. Smith'), 'Alice%20%C3%84.%20Smith')
  t.equal(encodeHeaderValue("-_.!~*'()"), "-_.!~*'()")
  t.equal(encodeHeaderValue('a,b'), 'a%2Cb')
  t.equal(encodeHeaderValue('line\nbreak'), 'line%0Abreak')
  // a lone surrogate would make encodeURIComponent throw: replaced, never a crash
  t.equal(encodeHeaderValue('x\ud800'), 'x%EF%BF%BD')
})

t.test('signature matches an independent verifier written from docs/PROTOCOL.md', async (t) => {
  const now = 1_700_000_000
  const headers = signIdentity(alice, SECRET, now)
  t.equal(headers['x-user'], 'alice')
  t.equal(headers['x-admin'], 'true')
  t.equal(headers['x-full-name'], 'Alice%20%C3%84.%20Smith')
  t.equal(headers['x-groups'], 'admins,a%2Cb')
  t.equal(headers['x-auth-timestamp'], String(now))
  t.match(headers['x-auth-signature'], /^v1=[0-9a-f]{64}$/)
  t.ok(specVerify(headers, SECRET, now), 'independent verifier accepts')
  t.notOk(specVerify({ ...headers, 'x-user': 'mallory' }, SECRET, now), 'changed user rejected')
  t.notOk(specVerify({ ...headers, 'x-admin': 'false' }, SECRET, now), 'changed admin rejected')
  t.notOk(specVerify({ ...headers, 'x-groups': 'admins' }, SECRET, now), 'changed groups rejected')
  t.notOk(specVerify(headers, 'y'.repeat(40), now), 'other secret rejected')
  t.notOk(specVerify(headers, SECRET, now + 61), 'stale rejected')
})

t.test('authgate/verify accepts what the gateway signs and nothing else', async (t) => {
  const now = 1_700_000_000
  const headers = signIdentity(alice, SECRET, now)
  const ok = verifyIdentityHeaders(headers, SECRET, { now })
  t.ok(ok.ok)
  if (ok.ok) t.same(ok.identity, { ...alice, timestamp: now })
  const cases: Array<[string, Record<string, string | string[] | undefined>, string, number?]> = [
    ['changed user', { ...headers, 'x-user': 'mallory' }, 'bad-signature'],
    ['changed email', { ...headers, 'x-email': 'm%40evil' }, 'bad-signature'],
    ['missing', {}, 'missing'],
    ['repeated user', { ...headers, 'x-user': ['alice', 'mallory'] }, 'malformed'],
    ['timestamp not a number', { ...headers, 'x-auth-timestamp': '17e8' }, 'malformed'],
    ['signature without version', { ...headers, 'x-auth-signature': headers['x-auth-signature'].slice(3) }, 'malformed'],
    ['stale', headers, 'stale', now + 120],
    ['from the future', headers, 'stale', now - 120]
  ]
  for (const [name, h, reason, at] of cases) {
    const result = verifyIdentityHeaders(h, SECRET, { now: at ?? now })
    t.equal(result.ok ? 'ok' : result.reason, reason, name)
  }
  t.ok(verifyIdentityHeaders(new Headers(headers), SECRET, { now }).ok, 'WHATWG Headers accepted')
})

t.test('IdentitySigner signs exactly as signIdentity, once per identity and second', async (t) => {
  const secret = 'signer-test-secret-0123456789abcdef0123456789'
  const signer = new IdentitySigner(secret)
  const bob = { username: 'bob', isAdmin: false, email: 'b@example.com', fullName: 'Bob Ä', groups: ['staff', 'a,b'] }
  const first = signer.sign(bob, 1_700_000_000)
  t.same(first, signIdentity(bob, secret, 1_700_000_000), 'the same headers, signature included')
  t.equal(signer.sign({ ...bob, groups: [...bob.groups] }, 1_700_000_000), first, 'the same identity in the same second: the headers signed already')
  t.ok(Object.isFrozen(first), 'shared, so read-only')
  const next = signer.sign(bob, 1_700_000_001)
  t.same(next, signIdentity(bob, secret, 1_700_000_001), 'the next second: signed again')
  t.not(next['x-auth-signature'], first['x-auth-signature'])
  t.same(signer.sign({ ...bob, isAdmin: true }, 1_700_000_001), signIdentity({ ...bob, isAdmin: true }, secret, 1_700_000_001), 'another identity: its own headers')
  t.same(signer.sign({ ...bob, groups: ['staff,a', 'b'] }, 1_700_000_001), signIdentity({ ...bob, groups: ['staff,a', 'b'] }, secret, 1_700_000_001), 'group names that differ only in where a comma is')
})
