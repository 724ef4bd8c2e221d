import t from 'tap'
import { claimAt, mapClaims, parseEmailVerified, parseGroups, MAX_FULL_NAME, MAX_GROUP, MAX_GROUPS } from '../../src/auth/oidc/claims.js'

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

t.test('parseGroups: array (as sent) or space/comma separated string; empty entries and repeats left out', async (t) => {
  t.same(parseGroups(['a', 'b', 'a', ' c ', '']), { ok: true, groups: ['a', 'b', ' c '] })
  t.same(parseGroups('a b,c , d\te'), { ok: true, groups: ['a', 'b', 'c', 'd', 'e'] })
  t.same(parseGroups(''), { ok: true, groups: [] })
  t.same(parseGroups(undefined), { ok: true, groups: [] })
  t.same(parseGroups(null), { ok: true, groups: [] })
})

t.test('parseGroups: never drops a group silently, refuses instead', async (t) => {
  const at = (n: number): string[] => Array.from({ length: n }, (_, i) => `g${i}`)
  t.same(parseGroups(at(MAX_GROUPS)), { ok: true, groups: at(MAX_GROUPS) }, 'at the limit: all kept')
  t.match(parseGroups([...at(MAX_GROUPS), 'suspended']), { ok: false, problem: 'too-many', reason: /257 groups, at most 256/ }, 'one over: refused')
  t.match(parseGroups([...at(MAX_GROUPS), 'g0']), { ok: true }, 'repeats do not count')
  t.match(parseGroups(['x'.repeat(MAX_GROUP)]), { ok: true }, 'a name at the length limit')
  t.match(parseGroups(['ok', 'x'.repeat(MAX_GROUP + 1)]), { ok: false, problem: 'too-long', reason: /group 2 of 2 is longer than 256/ })
  for (const bad of [['a', 3], ['a', null], [{ name: 'a' }], { a: 1 }, 42, true]) {
    t.match(parseGroups(bad), { ok: false, problem: 'unreadable' }, JSON.stringify(bad))
  }
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
  const result = mapClaims({ sub: 's', preferred_username: 'Alice', name: 'Alice A', email: 'alice@example.test', email_verified: true, groups: ['g'] }, mapping)
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

t.test('mapClaims: look-alike usernames are refused with a page that says why, never folded', async (t) => {
  for (const [name, reason] of [['ａｄｍｉｎ', /NFKC form \(U\+FF41\)/], ['\u212Aarl', /U\+212A/], ['ﬁona', /U\+FB01/], ['Zoe\u0301', /U\+0301/], [' Alice ', /spaces around it/], ['admin\u00A0', /spaces around it/]] as const) {
    const result = mapClaims({ preferred_username: name }, mapping)
    t.equal(result.ok ? 'ok' : result.code, 'lookalike-username', JSON.stringify(name))
    if (result.ok) continue
    t.match(result.message, /"preferred_username"[\s\S]*would be read as another name[\s\S]*OIDC_USERNAME_CLAIM/)
    t.notOk(result.message.includes(name), 'the page does not show the value')
    t.match(result.reason, reason)
  }
  t.match(mapClaims({ preferred_username: 'KARL' }, mapping), { ok: true, identity: { username: 'karl' } }, 'a case variant is the documented rule')
})

t.test('mapClaims: groups that cannot all be carried refuse the sign-in', async (t) => {
  const many = mapClaims({ preferred_username: 'a', groups: Array.from({ length: 2000 }, (_, i) => `g${i}`) }, mapping)
  t.match(many, { ok: false, code: 'groups-too-large', reason: /2000 groups, at most 256/, message: /fewer groups[\s\S]*OIDC_GROUPS_CLAIM/ })
  t.match(mapClaims({ preferred_username: 'a', groups: { admins: true } }, mapping), { ok: false, code: 'invalid-groups', message: /"groups" \(OIDC_GROUPS_CLAIM\)/ })
  // Entra ID above 200 groups: a reference to Microsoft Graph instead of the list.
  const overage = mapClaims({ preferred_username: 'a', _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.microsoft.com/…' } } }, mapping)
  t.match(overage, { ok: false, code: 'groups-too-large', reason: /reference to the groups/ })
  t.match(mapClaims({ preferred_username: 'a', _claim_names: { other: 'src1' } }, mapping), { ok: true }, 'other distributed claims do not matter')
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
