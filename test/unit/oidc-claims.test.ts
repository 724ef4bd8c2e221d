import t from 'tap'
import { claimAt, mapClaims, parseEmailVerified, parseGroups, MAX_FULL_NAME } from '../../src/auth/oidc/claims.js'

const mapping = { usernameClaim: 'preferred_username', fullNameClaim: 'name', emailClaim: 'email', groupsClaim: 'groups' }

t.test('claimAt: literal names first, then dotted paths into objects', async (t) => {
  const claims = { a: { b: { c: 1 } }, 'https://example.com/groups': ['x'], 'a.b': 'literal', arr: [{ x: 1 }] }
  t.equal(claimAt(claims, 'a.b'), 'literal', 'a literal claim named with a dot wins')
  t.same(claimAt(claims, 'a.b.c'), 1)
  t.same(claimAt(claims, 'https://example.com/groups'), ['x'], 'Auth0 namespaced claim')
  t.equal(claimAt(claims, 'a.x.c'), undefined)
  t.equal(claimAt(claims, 'arr.0.x'), undefined, 'no walking into arrays')
  t.equal(claimAt(claims, 'constructor'), undefined, 'no prototype properties')
  t.equal(claimAt(claims, 'a.b.c.toString'), undefined)
})

t.test('parseGroups: array or space/comma separated string, cleaned', async (t) => {
  t.same(parseGroups(['a', 'b', 'a', ' c ', '', 3, null]), ['a', 'b', 'c'])
  t.same(parseGroups('a b,c , d\te'), ['a', 'b', 'c', 'd', 'e'])
  t.same(parseGroups(''), [])
  t.same(parseGroups(undefined), [])
  t.same(parseGroups({ a: 1 }), [])
  t.same(parseGroups(['x'.repeat(300), 'ok']), ['ok'], 'absurdly long group names are dropped')
  t.equal(parseGroups(Array.from({ length: 1000 }, (_, i) => `g${i}`)).length, 256, 'bounded count')
})

t.test('parseEmailVerified: booleans and their string forms only', async (t) => {
  t.equal(parseEmailVerified(true), true)
  t.equal(parseEmailVerified('true'), true)
  t.equal(parseEmailVerified(false), false)
  t.equal(parseEmailVerified('false'), false)
  t.equal(parseEmailVerified(undefined), undefined)
  t.equal(parseEmailVerified(1), undefined)
  t.equal(parseEmailVerified('yes'), undefined)
})

t.test('mapClaims: the usual shape', async (t) => {
  const result = mapClaims({ sub: 's', preferred_username: ' Alice ', name: 'Alice A', email: 'alice@example.test', email_verified: true, groups: ['g'] }, mapping)
  t.same(result, { ok: true, identity: { username: 'alice', fullName: 'Alice A', email: 'alice@example.test', emailVerified: true, groups: ['g'] } })
})

t.test('mapClaims: nested claims (Keycloak realm roles)', async (t) => {
  const result = mapClaims({ sub: 's', preferred_username: 'kim', realm_access: { roles: ['admin', 'user'] } }, { ...mapping, groupsClaim: 'realm_access.roles' })
  t.ok(result.ok)
  if (result.ok) t.same(result.identity.groups, ['admin', 'user'])
})

t.test('mapClaims: a missing username names the claim and the claim names sent, never values', async (t) => {
  const result = mapClaims({ sub: 'secret-sub', email: 'who@example.test', name: 'Who' }, mapping)
  t.equal(result.ok, false)
  if (result.ok) return
  t.equal(result.code, 'missing-username')
  t.match(result.message, /"preferred_username" \(OIDC_USERNAME_CLAIM\)/)
  t.match(result.message, /It sent: email, name, sub\./)
  t.notMatch(result.message, /who@example|secret-sub|Who/)
  for (const bad of [{ preferred_username: '' }, { preferred_username: '   ' }, { preferred_username: 42 }, { preferred_username: ['a'] }]) {
    t.equal(mapClaims(bad, mapping).ok, false, JSON.stringify(bad))
  }
  const none = mapClaims({}, mapping)
  t.match(!none.ok && none.message, /It sent: no claims/)
})

t.test('mapClaims: unusable usernames are refused', async (t) => {
  for (const name of ['a b', '-lead', 'x'.repeat(65), 'tab\tname', 'semi;colon']) {
    const result = mapClaims({ preferred_username: name }, mapping)
    t.equal(result.ok ? 'ok' : result.code, 'invalid-username', name)
  }
})

t.test('mapClaims: optional claims are cleaned, not trusted', async (t) => {
  const result = mapClaims({ preferred_username: 'a', name: 'n'.repeat(1000), email: 'not-an-email', email_verified: 'false', groups: 'x y' }, mapping)
  t.ok(result.ok)
  if (!result.ok) return
  t.equal(result.identity.fullName?.length, MAX_FULL_NAME, 'long names are cut')
  t.equal(result.identity.email, null, 'not an address')
  t.equal(result.identity.emailVerified, false)
  t.same(result.identity.groups, ['x', 'y'])
  const other = mapClaims({ preferred_username: 'a', name: 5, email: `${'e'.repeat(300)}@example.test` }, mapping)
  t.ok(other.ok && other.identity.fullName === null && other.identity.email === null)
})
