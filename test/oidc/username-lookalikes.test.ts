// SSO usernames that only look like an existing name (fullwidth letters, the Kelvin sign, a trailing
// space) must never land on that account: the sign-in is refused with a page that says why, and no
// row is created or changed. A case variant ("Karl" for "karl") is the documented rule and still links.
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
    'fullwidth-admin': { preferred_username: 'ａｄｍｉｎ', name: 'Not The Admin', email: 'evil@example.test', email_verified: true, groups: [] },
    'kelvin-karl': { preferred_username: '\u212Aarl', name: 'Not Karl', email: 'evil-karl@example.test', email_verified: true, groups: [] },
    'spaced-admin': { preferred_username: 'admin ', name: 'Trailing Space', email: 'space@example.test', email_verified: true, groups: [] },
    'ligature-fiona': { preferred_username: 'ﬁona', name: 'Not Fiona', email: 'evil-fiona@example.test', email_verified: true, groups: [] },
    'real-karl': { preferred_username: 'Karl', name: 'Karl K', email: 'karl@example.test', email_verified: true, groups: [] }
  },
  password: 'pw'
})
t.teardown(() => op.close())

const gw = await startSsoGateway(op.issuer, {}, upstream.url)
t.teardown(() => gw.close())

const { user: admin } = await gw.users.create({ username: 'admin', isAdmin: true, fullName: 'The Admin', email: 'admin@example.test' })
const { user: karl } = await gw.users.create({ username: 'karl', fullName: 'Karl Local', email: 'karl@old.example.test' })
const { user: fiona } = await gw.users.create({ username: 'fiona', fullName: 'Fiona', email: 'fiona@example.test' })

for (const [login, victim] of [['fullwidth-admin', admin], ['spaced-admin', admin], ['kelvin-karl', karl], ['ligature-fiona', fiona]] as const) {
  t.test(`${login}: refused, ${victim.username} unchanged`, async (t) => {
    const countBefore = (await gw.users.list()).length
    const jar = new CookieJar()
    const response = await ssoLogin(gw, jar, { login, password: 'pw' })
    const body = await response.text()
    t.equal(response.status, 400)
    t.match(body, /Error code: lookalike-username/)
    t.match(body, /would be read as another name/, 'the page says why')
    t.match(body, /OIDC_USERNAME_CLAIM/, 'and what the operator can do')
    t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'no session')
    t.same(await gw.users.findByUsername(victim.username), victim, 'the look-alike target is unchanged')
    t.equal((await gw.users.list()).length, countBefore, 'no row created')
  })
}

t.test('a case variant is the same name (the documented rule): Karl links to karl', async (t) => {
  const jar = new CookieJar()
  const response = await ssoLogin(gw, jar, { login: 'real-karl', password: 'pw' })
  t.equal(response.status, 302, await response.text())
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'karl')
  const after = await gw.users.findByUsername('karl')
  t.equal(after?.id, karl.id)
  t.equal(after?.oidcSub, 'real-karl')
  t.equal(after?.email, 'karl@example.test')
})
