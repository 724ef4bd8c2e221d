// The IdP is down when the gateway starts: the gateway still serves local sign-in, SSO answers with
// an "unavailable, try again" page, readiness says why, and SSO works once the IdP is back.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { CookieJar } from '../support/browserless.js'
import { startGateway } from '../support/gateway.js'
import { http, loginLocal } from '../support/http.js'
import { oidcEnv, startSso } from '../support/sso.js'

/** A provider whose discovery answers 503 until `up` is set. */
async function flakyProvider (): Promise<{ issuer: string, setUp: (up: boolean) => void, discoveries: () => number, close: () => Promise<void> }> {
  let up = false
  let discoveries = 0
  const server = createServer((req, res) => {
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    if (req.url === '/.well-known/openid-configuration') {
      discoveries += 1
      if (!up) { res.writeHead(503).end('maintenance'); return }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256']
      }))
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setUp: (value) => { up = value },
    discoveries: () => discoveries,
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}

t.test('AUTH_METHOD=both with the provider down, then back', async (t) => {
  const idp = await flakyProvider()
  t.teardown(() => idp.close())
  const gw = await startGateway(oidcEnv(idp.issuer, { AUTH_METHOD: 'both' }))
  t.teardown(() => gw.close())

  const ready = await http(`${gw.url}/_authgate/readyz`)
  t.equal(ready.status, 200, 'still ready: local sign-in works')
  const checks = JSON.parse(ready.body).checks as Record<string, string>
  t.match(checks['oidc'], new RegExp(`discovery of ${idp.issuer}/ (in progress|failed)`))

  const sso = await startSso(gw, new CookieJar(), '/x')
  t.equal(sso.response.status, 503)
  const page = sso.body
  t.match(page, /role="alert" id="login-error"><span class="visually-hidden">Error: <\/span>The single sign-on provider cannot be reached right now/, 'said inline on the login page')
  t.match(page, /id="sso" href="\/login\/oidc\?next=%2Fx">/, 'the SSO button tries again')
  t.match(page, /id="username"/, 'the local form is right there')

  const reason = JSON.parse((await http(`${gw.url}/_authgate/readyz`)).body).checks['oidc'] as string
  t.match(reason, /failed \d+ times? \(last: .*HTTP 503\); retrying in \d+s/, 'readiness says why')

  const local = await loginLocal(gw.url, 'alice', { next: '/y' })
  t.equal(local.response.status, 303, 'local sign-in works meanwhile')
  t.equal(local.response.headers.location, '/y')

  idp.setUp(true)
  let status = 0
  for (let i = 0; i < 50 && status !== 302; i++) {
    status = (await startSso(gw, new CookieJar(), '/x')).response.status
    if (status !== 302) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(status, 302, 'SSO starts once the provider is back')
  t.equal(JSON.parse((await http(`${gw.url}/_authgate/readyz`)).body).checks['oidc'], 'ok')
  const before = idp.discoveries()
  await startSso(gw, new CookieJar())
  t.equal(idp.discoveries(), before, 'no more discovery once it succeeded')
})

t.test('AUTH_METHOD=oidc with an unreachable provider is not ready, and says why', async (t) => {
  const idp = await flakyProvider()
  const issuer = idp.issuer
  await idp.close()
  const gw = await startGateway(oidcEnv(issuer))
  t.teardown(() => gw.close())
  const page = await http(`${gw.url}/login/oidc`)
  t.equal(page.status, 503)
  t.match(page.body, /cannot be reached right now/)
  const ready = await http(`${gw.url}/_authgate/readyz`)
  t.equal(ready.status, 503)
  t.match(JSON.parse(ready.body).checks['oidc'], /failed .*ECONNREFUSED/)
  t.equal((await http(`${gw.url}/_authgate/healthz`)).status, 200, 'alive all the same')
})
