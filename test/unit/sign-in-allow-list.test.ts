import t from 'tap'
import { checkSignInAllowed, hasAllowList, type SignInAllowList } from '../../src/policy/sign-in-allow-list.js'

const none: SignInAllowList = { emailDomains: [], emails: [], groups: [] }
const lists: SignInAllowList = { emailDomains: ['example.com'], emails: ['partner@other.test'], groups: ['Staff'] }
const person = { email: 'someone@nowhere.test', emailVerified: true, groups: [] as string[] }

t.test('no list: every account may sign in', async (t) => {
  t.notOk(hasAllowList(none))
  t.same(checkSignInAllowed(none, { email: null, emailVerified: undefined, groups: [] }), { ok: true })
})

t.test('one match in any list allows', async (t) => {
  t.ok(hasAllowList(lists))
  const cases: Array<[string, Parameters<typeof checkSignInAllowed>[1], boolean]> = [
    ['verified email in a listed domain', { ...person, email: 'a@example.com' }, true],
    ['upper-case email', { ...person, email: 'A.B@EXAMPLE.COM' }, true],
    ['email verified as the string "true" is parsed upstream; false stays false', { ...person, email: 'a@example.com', emailVerified: false }, false],
    ['unverified email in the domain', { ...person, email: 'a@example.com', emailVerified: undefined }, false],
    ['suffix trick', { ...person, email: 'a@example.com.evil.test' }, false],
    ['subdomain', { ...person, email: 'a@mail.example.com' }, false],
    ['look-alike prefix', { ...person, email: 'a@evilexample.com' }, false],
    ['two @', { ...person, email: 'user@evil.test@example.com' }, false],
    ['listed address', { ...person, email: 'partner@other.test' }, true],
    ['listed address, other case', { ...person, email: 'Partner@Other.Test' }, true],
    ['listed address, unverified', { ...person, email: 'partner@other.test', emailVerified: false }, false],
    ['listed group', { ...person, groups: ['Staff'] }, true],
    ['group differing only in case', { ...person, groups: ['staff', 'STAFF'] }, false],
    ['unverified email but a listed group', { email: 'a@example.com', emailVerified: false, groups: ['x', 'Staff'] }, true],
    ['nothing matches', person, false],
    ['no email, no groups', { email: null, emailVerified: undefined, groups: [] }, false]
  ]
  for (const [name, candidate, allowed] of cases) {
    t.same(checkSignInAllowed(lists, candidate), allowed ? { ok: true } : { ok: false, reason: 'not-allowed' }, name)
  }
})
