import t from 'tap'
import { decideLink, isUniqueViolation } from '../../src/auth/oidc/linking.js'
import type { User } from '../../src/db/users.js'

const user = (over: Partial<User> = {}): User => ({
  id: 1, username: 'alice', fullName: null, email: null, isAdmin: false, isActive: true, passwordHash: null,
  oidcIssuer: null, oidcSub: null, createdAt: new Date(0), lastLoginAt: null, sessionsRevokedAt: null, ...over
})
const open = { allowSelfRegister: true, usernameIsEmail: false }
const verified = { emailVerified: true }
const unknown = { emailVerified: undefined }

t.test('the (issuer, sub) link wins over everything', async (t) => {
  const linked = user({ oidcIssuer: 'https://idp', oidcSub: 's' })
  t.same(decideLink(linked, undefined, unknown, { allowSelfRegister: false, usernameIsEmail: true }), { action: 'use', user: linked })
})

t.test('same username without a link: linked', async (t) => {
  const local = user()
  t.same(decideLink(undefined, local, unknown, open), { action: 'link', user: local })
  t.same(decideLink(undefined, local, unknown, { ...open, allowSelfRegister: false }), { action: 'link', user: local }, 'registration closed does not matter: the user exists')
})

t.test('same username linked to another identity: refused', async (t) => {
  t.same(decideLink(undefined, user({ oidcIssuer: 'https://idp', oidcSub: 'other' }), verified, open), { action: 'refuse', reason: 'linked-elsewhere' })
  t.same(decideLink(undefined, user({ oidcIssuer: 'https://old-idp', oidcSub: null }), verified, open), { action: 'refuse', reason: 'linked-elsewhere' }, 'half a link is still a link')
})

t.test('a username that is an email address must be verified to match or be created', async (t) => {
  const policy = { ...open, usernameIsEmail: true }
  t.same(decideLink(undefined, user(), { emailVerified: false }, policy), { action: 'refuse', reason: 'unverified-email' })
  t.same(decideLink(undefined, user(), unknown, policy), { action: 'refuse', reason: 'unverified-email' }, 'not saying is not verifying')
  t.same(decideLink(undefined, undefined, { emailVerified: false }, policy), { action: 'refuse', reason: 'unverified-email' }, 'nor created: the upstream trusts the name')
  t.same(decideLink(undefined, user(), verified, policy), { action: 'link', user: user() })
  t.same(decideLink(undefined, user(), { emailVerified: false }, open), { action: 'link', user: user() }, 'irrelevant when the username is not the email')
})

t.test('unknown users: created only with self-registration', async (t) => {
  t.same(decideLink(undefined, undefined, unknown, open), { action: 'create' })
  t.same(decideLink(undefined, undefined, unknown, { ...open, allowSelfRegister: false }), { action: 'refuse', reason: 'not-registered' })
})

t.test('unique violations of both dialects are recognised', async (t) => {
  t.ok(isUniqueViolation({ code: 'SQLITE_CONSTRAINT_UNIQUE' }))
  t.ok(isUniqueViolation({ code: '23505' }))
  t.notOk(isUniqueViolation({ code: 'SQLITE_BUSY' }))
  t.notOk(isUniqueViolation(null))
  t.notOk(isUniqueViolation(new Error('x')))
})
