// Admin mapping and account linking against the real OpenID Provider.
import t from 'tap'
import { CookieJar } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, identityAtUpstream, ssoLogin, startSsoGateway } from '../support/sso.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: {
    alice: { preferred_username: 'alice', name: 'Alice', email: 'alice@example.test', email_verified: true, groups: ['staff', 'tt-admins'] },
    bob: { preferred_username: 'bob', name: 'Bob', email: 'Bob.Boss@Example.test', email_verified: true, groups: ['staff'] },
    mallory: { preferred_username: 'mallory', name: 'Mallory', email: 'bob.boss@example.test', email_verified: false, groups: [] },
    carol: { sub: 'carol-sub', preferred_username: 'carol', name: 'Carol New Name', email: 'carol@new.example.test', email_verified: true, groups: [] },
    dave: { sub: 'dave-at-idp', preferred_username: 'dave', name: 'Dave', email: 'dave@example.test', email_verified: true, groups: [] },
    'erin-sub': { preferred_username: 'erin-idp', name: 'Erin', email: 'erin@example.test', email_verified: false, groups: [] },
    'frank-sub': { preferred_username: 'frank-idp', name: 'Frank', email: 'frank@example.test', email_verified: true, groups: [] }
  },
  password: 'pw'
})
t.teardown(() => op.close())

t.test('admin mapping', async (t) => {
  const gw = await startSsoGateway(op.issuer, { OIDC_ADMIN_GROUP: 'tt-admins', OIDC_ADMIN_EMAILS: 'bob.boss@example.test, someone@example.test' }, upstream.url)
  t.teardown(() => gw.close())

  await t.test('by group', async (t) => {
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'alice', password: 'pw' })).status, 302)
    t.equal((await identityAtUpstream(gw, jar, upstream))?.admin, 'true')
    t.equal((await gw.users.findByUsername('alice'))?.isAdmin, true)
  })

  await t.test('removed from the group: no longer admin at the next login', async (t) => {
    op.accounts.get('alice')!.groups = ['staff']
    t.teardown(() => { op.accounts.get('alice')!.groups = ['staff', 'tt-admins'] })
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'alice', password: 'pw' })).status, 302)
    t.equal((await identityAtUpstream(gw, jar, upstream))?.admin, 'false')
    t.equal((await gw.users.findByUsername('alice'))?.isAdmin, false)
  })

  await t.test('by email, case-insensitively', async (t) => {
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'bob', password: 'pw' })).status, 302)
    t.equal((await identityAtUpstream(gw, jar, upstream))?.admin, 'true')
  })

  await t.test('not by an email the provider marks unverified', async (t) => {
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'mallory', password: 'pw' })).status, 302)
    t.equal((await identityAtUpstream(gw, jar, upstream))?.admin, 'false')
  })

  await t.test('an admin granted by the CLI loses it when a mapping is configured', async (t) => {
    await gw.users.setAdmin('mallory', true)
    const jar = new CookieJar()
    await ssoLogin(gw, jar, { login: 'mallory', password: 'pw' })
    t.equal((await gw.users.findByUsername('mallory'))?.isAdmin, false)
  })
})

t.test('without a group or email mapping, admin is kept and ADMIN_USERNAMES promotes', async (t) => {
  const gw = await startSsoGateway(op.issuer, { ADMIN_USERNAMES: 'bob' }, upstream.url)
  t.teardown(() => gw.close())
  await gw.users.create({ username: 'alice', isAdmin: true })
  await ssoLogin(gw, new CookieJar(), { login: 'alice', password: 'pw' })
  t.equal((await gw.users.findByUsername('alice'))?.isAdmin, true, 'kept')
  await ssoLogin(gw, new CookieJar(), { login: 'bob', password: 'pw' })
  t.equal((await gw.users.findByUsername('bob'))?.isAdmin, true, 'promoted by ADMIN_USERNAMES')
})

t.test('linking rules', async (t) => {
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())

  await t.test('an existing local user without a link is linked, profile refreshed', async (t) => {
    const { user: before } = await gw.users.create({ username: 'carol', fullName: 'Carol Old', email: 'carol@old.example.test' })
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'carol', password: 'pw' })).status, 302)
    const after = await gw.users.findByUsername('carol')
    t.equal(after?.id, before.id, 'same user')
    t.equal(after?.oidcIssuer, op.issuer)
    t.equal(after?.oidcSub, 'carol-sub')
    t.equal(after?.fullName, 'Carol New Name')
    t.equal(after?.email, 'carol@new.example.test')
    t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'carol')
  })

  await t.test('once linked, the subject decides even if the username changes at the IdP', async (t) => {
    op.accounts.get('carol')!.preferred_username = 'caroline'
    t.teardown(() => { op.accounts.get('carol')!.preferred_username = 'carol' })
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'carol-sub', password: 'pw' })).status, 302)
    t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'carol')
    t.equal(await gw.users.findByUsername('caroline'), undefined)
  })

  await t.test('a user linked to another identity is never taken over', async (t) => {
    await gw.users.create({ username: 'dave', oidcIssuer: op.issuer, oidcSub: 'the-real-dave' })
    const jar = new CookieJar()
    const response = await ssoLogin(gw, jar, { login: 'dave', password: 'pw' })
    t.equal(response.status, 409)
    t.match(await response.text(), /Account already linked[\s\S]*linked-elsewhere/)
    t.equal((await gw.users.findByUsername('dave'))?.oidcSub, 'the-real-dave')
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
  })

  await t.test('a disabled user is refused', async (t) => {
    await gw.users.setActive('carol', false)
    t.teardown(async () => { await gw.users.setActive('carol', true) })
    const response = await ssoLogin(gw, new CookieJar(), { login: 'carol', password: 'pw' })
    t.equal(response.status, 403)
    t.match(await response.text(), /disabled/)
  })
})

t.test('email as username: never matched unless the provider verified it', async (t) => {
  const gw = await startSsoGateway(op.issuer, { OIDC_USERNAME_CLAIM: 'email' }, upstream.url)
  t.teardown(() => gw.close())

  await t.test('unverified: the existing user is not linked, and nobody is signed in', async (t) => {
    await gw.users.create({ username: 'erin@example.test' })
    const jar = new CookieJar()
    const response = await ssoLogin(gw, jar, { login: 'erin-sub', password: 'pw' })
    t.equal(response.status, 403)
    t.match(await response.text(), /Email address not verified[\s\S]*unverified-email/)
    t.equal((await gw.users.findByUsername('erin@example.test'))?.oidcSub, null)
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined)
  })

  await t.test('verified: linked', async (t) => {
    const { user } = await gw.users.create({ username: 'frank@example.test' })
    const jar = new CookieJar()
    t.equal((await ssoLogin(gw, jar, { login: 'frank-sub', password: 'pw' })).status, 302)
    const linked = await gw.users.findByUsername('frank@example.test')
    t.equal(linked?.id, user.id)
    t.equal(linked?.oidcSub, 'frank-sub')
  })
})

t.test('concurrent first sign-ins of one identity create one user', async (t) => {
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  t.teardown(() => gw.close())
  const results = await Promise.all([1, 2, 3].map(async () => await ssoLogin(gw, new CookieJar(), { login: 'alice', password: 'pw' })))
  t.same(results.map((r) => r.status), [302, 302, 302])
  t.equal((await gw.users.list()).filter((u) => u.username === 'alice').length, 1)
})
