import t from 'tap'
import { checkAccess, emailDomain, parseAccessRules, pathReadings, ruleFor, MAX_SPELLINGS, type AccessRule, type Subject } from '../../src/policy/access-rules.js'
import { normalizeRequestTarget } from '../../src/proxy/access.js'

function rules (value: string): AccessRule[] {
  const parsed = parseAccessRules(value)
  if (!parsed.ok) throw new Error(parsed.problems.join('\n'))
  return parsed.rules
}

const alice: Subject = { username: 'alice', isAdmin: false, email: 'alice@example.com', emailVerified: true, groups: ['staff'] }
const admin: Subject = { ...alice, username: 'root', isAdmin: true, groups: [] }

/** The path exactly as the gateway sees it: after the request-target normaliser. */
const normalised = (raw: string): string => normalizeRequestTarget(raw)!.path

t.test('every rule form parses', async (t) => {
  t.same(rules('/admin=admin; /reports = group:finance, user:Bob ;/mail=email-domain:Example.COM;'), [
    { path: '/reports', match: '/reports', requirements: [{ kind: 'group', group: 'finance' }, { kind: 'user', username: 'bob' }] },
    { path: '/admin', match: '/admin', requirements: [{ kind: 'admin' }] },
    { path: '/mail', match: '/mail', requirements: [{ kind: 'email-domain', domain: 'example.com' }] }
  ].sort((a, b) => b.match.length - a.match.length))
  t.same(rules(''), [], 'empty: no rules')
  t.same(rules(' ; ;'), [], 'only separators: no rules')
  t.same(rules('/Admin/=ADMIN')[0], { path: '/Admin/', match: '/admin', requirements: [{ kind: 'admin' }] }, 'a trailing / and case are folded for matching')
  t.same(rules('/=group:staff')[0]!.match, '/', 'a rule for the whole application')
  t.same(rules('/x=group:Team A')[0]!.requirements, [{ kind: 'group', group: 'Team A' }], 'group names keep their case and inner spaces')
})

t.test('malformed rules: one message each, naming the rule', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['/admin', /must be <path>=<requirement>/],
    ['admin=admin', /must start with \//],
    ['/a/../b=admin', /must be plain/],
    ['/a//b=admin', /must be plain/],
    ['/a%2fb=admin', /must be plain/],
    ['/a?x=admin', /must be plain/],
    ['/a;x=admin', /must start with \/|must be <path>/],
    ['/admin=', /no requirement/],
    ['/admin= , ', /no requirement/],
    ['/admin=root', /unknown requirement "root"/],
    ['/admin=role:x', /unknown requirement "role:x"/],
    ['/admin=group:', /names nobody/],
    ['/admin=user:', /names nobody/],
    ['/admin=user:bad name', /not a username/],
    ['/admin=email-domain:exa mple.com', /not a domain/],
    ['/admin=email-domain:@example.com', /not a domain/],
    ['/admin=admin;/ADMIN/=group:x', /a second rule for \/ADMIN\//]
  ]
  for (const [value, message] of cases) {
    const parsed = parseAccessRules(value)
    t.equal(parsed.ok, false, value)
    if (!parsed.ok) t.match(parsed.problems.join('\n'), message, value)
  }
  const several = parseAccessRules('/a=nobody;/b=admin;/c=group:')
  t.equal(several.ok ? 0 : several.problems.length, 2, 'every bad rule reported, the good one not')
})

t.test('rules match by whole segments, longest first', async (t) => {
  const r = rules('/admin=admin;/admin/reports=group:staff;/=user:alice')
  t.equal(ruleFor(r, '/admin')?.path, '/admin')
  t.equal(ruleFor(r, '/admin/')?.path, '/admin')
  t.equal(ruleFor(r, '/admin/x')?.path, '/admin')
  t.equal(ruleFor(r, '/admin/reports/2026')?.path, '/admin/reports', 'the longest rule applies')
  t.equal(ruleFor(r, '/administrator')?.path, '/', 'not a segment of /admin')
  t.equal(ruleFor(r, '/ADMIN/x')?.path, '/admin', 'case-insensitive: an upstream may be')
  t.equal(ruleFor(rules('/admin=admin'), '/other'), undefined, 'uncovered paths have no rule')
})

t.test('a user passes when any requirement holds', async (t) => {
  const r = rules('/admin=admin;/finance=group:finance,user:alice;/mail=email-domain:example.com;/ops=group:Ops')
  t.ok(checkAccess(r, '/admin', admin).ok)
  t.same(checkAccess(r, '/admin/users', alice), { ok: false, reason: 'rule', rule: '/admin' })
  t.ok(checkAccess(r, '/finance', alice).ok, 'by name')
  t.notOk(checkAccess(r, '/finance', { ...alice, username: 'bob' }).ok)
  t.ok(checkAccess(r, '/finance', { ...alice, username: 'bob', groups: ['finance'] }).ok, 'by group')
  t.notOk(checkAccess(r, '/ops', alice).ok)
  t.notOk(checkAccess(r, '/ops', { ...alice, groups: ['ops'] }).ok, 'groups differing only in case do not match')
  t.ok(checkAccess(r, '/ops', { ...alice, groups: ['Ops'] }).ok)
  t.ok(checkAccess(r, '/mail', alice).ok, 'verified email in the domain')
  t.ok(checkAccess(r, '/mail', { ...alice, email: 'Alice@EXAMPLE.com' }).ok, 'domains compare case-insensitively')
  t.notOk(checkAccess(r, '/mail', { ...alice, emailVerified: false }).ok, 'an unverified email does not count')
  t.notOk(checkAccess(r, '/mail', { ...alice, email: 'alice@example.com.evil.test' }).ok, 'no suffix match')
  t.notOk(checkAccess(r, '/mail', { ...alice, email: 'alice@sub.example.com' }).ok, 'no subdomain match')
  t.notOk(checkAccess(r, '/mail', { ...alice, email: 'user@evil.test@example.com' }).ok, 'two @ is no address')
  t.notOk(checkAccess(r, '/mail', { ...alice, email: null }).ok)
  t.ok(checkAccess(r, '/elsewhere', { ...alice, groups: [] }).ok, 'paths no rule covers are open to every signed-in user')
  t.ok(checkAccess([], '/admin', alice).ok, 'no rules: everything open')
})

t.test('no spelling of a path slips under its rule', async (t) => {
  const r = rules('/admin=admin')
  const attempts = [
    '/admin', '/admin/', '/Admin', '/ADMIN/x', '/%61dmin', '/%41DMIN/x', '/adm%69n', '/%2561dmin', '/%25%36%31dmin',
    '/x/../admin', '/x/%2e%2e/admin', '/x/%2E%2E/admin', '/x/..%2fadmin', '/x%2f..%2fadmin', '/x/%252e%252e/admin',
    '/x/..;/admin', '/x/.;y/../..;z/admin', '/x/..%3b/admin', '/admin;jsessionid=1', '/admin%3bx', '/admin%2F',
    '/admin%2fusers', '//admin', '///admin/x', '/x/..//admin', '/x/%2e%2e//admin', '/x\\..\\admin', '/x/%5c..%5cadmin', '/./admin'
  ]
  for (const raw of attempts) {
    const path = normalised(raw)
    t.same(checkAccess(r, path, alice), { ok: false, reason: 'rule', rule: '/admin' }, `${raw} (normalised ${path})`)
    t.ok(checkAccess(r, path, admin).ok, `${raw}: an admin passes`)
  }
  for (const raw of ['/administrator', '/admin-tools', '/adminx', '/x/admin', '/static/%2Fadmin-like', '/files/a%20b', '/api;v=2/x']) {
    t.ok(checkAccess(r, normalised(raw), alice).ok, `${raw} is not under /admin`)
  }
})

t.test('readings: one for a plain path, refusal when a path will not settle', async (t) => {
  t.same(pathReadings('/a/b'), ['/a/b'], 'a plain path has one reading')
  t.same(pathReadings('/files/a%20b'), ['/files/a%20b', '/files/a b'], 'an ordinary escape: two readings')
  const r = rules('/admin=admin')
  const fourTimes = normalised('/%2525252561dmin')
  t.equal(pathReadings(fourTimes), undefined, 'still decoding after three rounds')
  t.same(checkAccess(r, fourTimes, admin), { ok: false, reason: 'ambiguous-path', rule: fourTimes }, 'refused, even for an admin: never let through')
  t.ok(checkAccess([], fourTimes, alice).ok, 'without rules, nothing to decide')
  // At most three decodes deep, but so many ways to combine them (found by a random search).
  const hostile = normalised('/%253b%255c//a%25255c%5c%5c%25253b%255c%25252f//%25252f%3b%5c%255c.')
  t.equal(pathReadings(hostile), undefined, `more than ${MAX_SPELLINGS} spellings`)
  t.same(checkAccess(r, hostile, alice), { ok: false, reason: 'ambiguous-path', rule: hostile })
})

t.test('readings decode escapes as UTF-8 and leave anything else as it is', async (t) => {
  t.same(pathReadings('/files/%C3%A9t%c3%a9'), ['/files/%C3%A9t%c3%a9', '/files/été'], 'UTF-8, either case of hex digit')
  t.same(pathReadings('/x%C3/y'), ['/x%C3/y', '/x\uFFFD/y'], 'an incomplete sequence is U+FFFD')
  t.same(pathReadings('/a%2/b%zz%'), ['/a%2/b%zz%'], 'no valid escape: nothing to decode')
  t.same(pathReadings('/x/%2e%2e/y'), ['/x/%2e%2e/y', '/y'], 'dot segments resolved once decoded')
  t.same(pathReadings('/%25C3%25A9'), ['/%25C3%25A9', '/%C3%A9', '/é'], 'decoded twice')
  // A decoded letter outside ASCII that lower-cases into ASCII (KELVIN SIGN -> k) is still compared lower-cased.
  const r = rules('/key=admin')
  t.same(checkAccess(r, normalised('/%E2%84%AAey/x'), alice), { ok: false, reason: 'rule', rule: '/key' })
  t.same(checkAccess(r, normalised('/KEY;v=1'), alice), { ok: false, reason: 'rule', rule: '/key' }, 'capitals with other readings')
  t.ok(checkAccess(r, normalised('/%E2%84%AAey/x'), admin).ok)
})

t.test('emailDomain takes plain addresses only', async (t) => {
  t.equal(emailDomain('a@Example.com'), 'example.com')
  t.equal(emailDomain('a@b@example.com'), undefined)
  t.equal(emailDomain('@example.com'), undefined)
  t.equal(emailDomain('a@'), undefined)
  t.equal(emailDomain('example.com'), undefined)
  t.equal(emailDomain(null), undefined)
})
