// LOCAL_MFA concerns local password accounts only: with AUTH_METHOD=both and LOCAL_MFA=required, an
// SSO user signed in at the real OpenID Provider fixture reaches the upstream (HTTP, forward-auth)
// without being held, and their account page says their identity provider handles second factors,
// with no form to add one (and the form's route refuses them).
import t from 'tap'
import { startUpstream } from '../support/upstream.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import { csrfTokenFrom } from '../support/http.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())
const op = await startOidcProvider({
  clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
  accounts: { erin: { preferred_username: 'erin', name: 'Erin', email: 'erin@example.test', email_verified: true, groups: [] } },
  password: 'pw'
})
t.teardown(() => op.close())
const gw = await startSsoGateway(op.issuer, { AUTH_METHOD: 'both', LOCAL_AUTH: 'password', LOCAL_MFA: 'required' }, upstream.url)
t.teardown(() => gw.close())

t.test('an SSO session is never held, and its account page leaves factors to the IdP', async (t) => {
  const jar = new CookieJar()
  const signedIn = await ssoLogin(gw, jar, { login: 'erin', password: 'pw' }, '/app')
  t.equal(signedIn.status, 302)
  t.equal(signedIn.headers.get('location'), '/app')
  t.equal((await fetchWithJar(jar, `${gw.url}/app`, { headers: { accept: 'application/json' } })).status, 200, 'the upstream answers')
  t.equal((await fetchWithJar(jar, `${gw.url}/_authgate/auth`, { headers: { accept: 'application/json' } })).status, 200, 'forward-auth too')
  const account = await fetchWithJar(jar, `${gw.url}/_authgate/account`, { headers: { accept: 'text/html' } })
  t.equal(account.status, 200)
  const body = await account.text()
  t.match(body, 'your identity provider handles second factors')
  t.notMatch(body, 'action="/_authgate/account/totp"', 'no form to add one')
  t.notMatch(body, '/_authgate/account/passkeys')
  t.match(body, 'action="/_authgate/account/sign-out-everywhere"')
  const refused = await fetchWithJar(jar, `${gw.url}/_authgate/account/totp`, {
    method: 'POST',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf_token: csrfTokenFrom(body) }).toString()
  })
  t.equal(refused.status, 404)
  t.equal((await gw.db.kysely.selectFrom('user_totp').selectAll().execute()).length, 0, 'nothing enrolled')
})
