import t from 'tap'
import { adminAfterLogin, isAdminMappingConfigured, mappedAdmin } from '../../src/auth/oidc/admin.js'

const mapping = { adminGroup: 'tt-admins', adminEmails: ['boss@example.test'], adminUsernames: ['root'] }
const subject = { username: 'u', email: null, emailVerified: undefined, groups: [] as string[] }

t.test('mappedAdmin: group, email, username', async (t) => {
  t.ok(mappedAdmin({ ...subject, groups: ['staff', 'tt-admins'] }, mapping), 'group member')
  t.notOk(mappedAdmin({ ...subject, groups: ['TT-Admins', 'tt-admins-x'] }, mapping), 'groups match exactly')
  t.ok(mappedAdmin({ ...subject, email: 'Boss@Example.TEST' }, mapping), 'email, case-insensitive')
  t.ok(mappedAdmin({ ...subject, email: 'boss@example.test', emailVerified: true }, mapping))
  t.ok(mappedAdmin({ ...subject, email: 'boss@example.test', emailVerified: undefined }, mapping), 'IdPs that do not say (Entra ID) are not marked unverified')
  t.notOk(mappedAdmin({ ...subject, email: 'boss@example.test', emailVerified: false }, mapping), 'never an email marked unverified')
  t.ok(mappedAdmin({ ...subject, username: 'root' }, mapping), 'ADMIN_USERNAMES')
  t.notOk(mappedAdmin(subject, mapping))
  t.notOk(mappedAdmin({ ...subject, groups: ['x'] }, { adminGroup: undefined, adminEmails: [], adminUsernames: [] }))
})

t.test('adminAfterLogin: a configured mapping is recomputed, otherwise admin only grows', async (t) => {
  t.ok(isAdminMappingConfigured(mapping))
  t.notOk(isAdminMappingConfigured({ adminGroup: undefined, adminEmails: [], adminUsernames: ['admin'] }))
  t.equal(adminAfterLogin(true, subject, mapping), false, 'removed from the group: demoted')
  t.equal(adminAfterLogin(false, { ...subject, groups: ['tt-admins'] }, mapping), true)
  const usernamesOnly = { adminGroup: undefined, adminEmails: [], adminUsernames: ['root'] }
  t.equal(adminAfterLogin(true, subject, usernamesOnly), true, 'kept (granted by the CLI)')
  t.equal(adminAfterLogin(false, { ...subject, username: 'root' }, usernamesOnly), true, 'promoted')
  t.equal(adminAfterLogin(false, subject, usernamesOnly), false)
})
