// The IdP failing during a sign-in, with OIDC_TIMEOUT=1: its token, userinfo or JWKS endpoint never
// answering (or stopping halfway through its answer), discovery hanging, the IdP going down between
// /login/oidc and the callback, a back-channel logout whose JWKS never comes. Each time the gateway
// answers (a 503 login page saying the provider cannot be reached, or the refusal the channel
// expects), gives up the request it made (the IdP sees the connection closed), logs which endpoint,
// and a new sign-in works as soon as the IdP answers again. Nothing here asserts how fast.
import t, { type Test } from 'tap'
import { generateKeyPair, SignJWT } from 'jose'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startHostileIdp, type HangMode, type HostileIdpFixture } from '../support/hostile-idp.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, deliverToGateway, hostileLogin, identityAtUpstream, oidcEnv, startSso, startSsoGateway } from '../support/sso.js'
import { startGateway } from '../support/gateway.js'
import { http } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'
import { scrape } from '../support/metrics.js'
import { eventually, within } from '../support/within.js'

/** Generous bounds: the machine is shared, and only "it answers at all" is asserted. */
const ANSWER_BOUND_MS = 60_000

const upstream = await startUpstream()
t.teardown(() => upstream.close())

async function hostileIdp (): Promise<HostileIdpFixture> {
  const idp = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET })
  t.teardown(() => idp.close())
  return idp
}

/** A failed SSO sign-in's answer: the login page, 503, saying the provider cannot be reached, with the SSO button to try again. */
async function expectProviderUnavailable (t: Test, response: Response): Promise<void> {
  const body = await response.text()
  t.equal(response.status, 503, 'answered 503')
  t.match(body, /The single sign-on provider cannot be reached right now/, 'the login page says the provider cannot be reached')
  t.match(body, /id="sso" href="\/login\/oidc\?next=%2Fafter">/, 'its SSO button starts a new sign-in, to the same place')
  t.notOk(response.headers.getSetCookie().some((c) => /^authgate=[^;]/.test(c)), 'no session cookie')
}

const failureLines = (lines: () => Array<Record<string, unknown>>): Array<Record<string, unknown>> => lines().filter((l) => l['msg'] === 'OIDC sign-in failed')

const HANGS: Array<{ path: string, mode: HangMode, endpoint: string }> = [
  { path: '/token', mode: 'no-answer', endpoint: 'token' },
  { path: '/token', mode: 'mid-body', endpoint: 'token' },
  { path: '/userinfo', mode: 'no-answer', endpoint: 'userinfo' },
  { path: '/userinfo', mode: 'mid-body', endpoint: 'userinfo' },
  { path: '/jwks', mode: 'no-answer', endpoint: 'jwks' },
  { path: '/jwks', mode: 'mid-body', endpoint: 'jwks' }
]

t.test('an IdP endpoint that hangs during a sign-in: 503 after OIDC_TIMEOUT, nothing left hanging, and the next sign-in works', async (t) => {
  const idp = await hostileIdp()
  for (const { path, mode, endpoint } of HANGS) {
    await t.test(`${path} ${mode}`, async (t) => {
      const capture = logCapture('info')
      // A fresh gateway each time: its JWKS cache is empty, so the sign-in fetches the keys.
      const gw = await startSsoGateway(idp.issuer, { OIDC_TIMEOUT: '1' }, upstream.url, { logger: capture.logger })
      let closed = false
      t.teardown(async () => { if (!closed) await gw.close() })
      const hungBefore = idp.hungRequests.length
      idp.setHang(path, mode)
      const jar = new CookieJar()
      const { response } = await within(hostileLogin(gw, jar, '/after'), ANSWER_BOUND_MS, `the callback answers while ${path} hangs`)
      await expectProviderUnavailable(t, response)
      const hung = idp.hungRequests.slice(hungBefore)
      t.equal(hung.length, 1, `the gateway called ${path} once, which hung`)
      t.ok(await eventually(() => hung.every((h) => !h.open), ANSWER_BOUND_MS), 'and gave that request up: the IdP saw its connection closed')
      const [failure] = failureLines(capture.lines)
      t.equal(failure?.['level'], 40, 'logged at warn')
      t.equal(failure?.['code'], 'provider-unavailable')
      t.match(String(failure?.['reason']), new RegExp(`^${endpoint} request to the IdP: no answer within 1 s \\(OIDC_TIMEOUT\\)`), 'the log names the endpoint and the setting')
      const metrics = await scrape(`${gw.url}/_authgate/metrics`)
      t.ok((metrics.value('authgate_idp_request_duration_seconds_count', { endpoint, outcome: 'failed' }) ?? 0) >= 1, `counted as a failed ${endpoint} request`)
      t.equal(metrics.value('authgate_login_failures_total', { method: 'oidc', reason: 'provider-unavailable' }), 1)
      t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'not signed in')

      // The IdP answers again: the same browser signs in with a new flow.
      idp.setHang(path, undefined)
      const retry = await within(hostileLogin(gw, jar, '/after'), ANSWER_BOUND_MS, 'the retried sign-in answers')
      t.equal(retry.response.status, 302, 'the retried sign-in succeeds')
      t.equal(retry.response.headers.get('location'), '/after')
      t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'mallory')
      await within(gw.close(), ANSWER_BOUND_MS, 'the gateway closes')
      closed = true
      t.pass('the gateway closed: no request of its own was left open')
    })
  }
})

t.test('discovery hanging: /login/oidc answers 503 and readiness says why; SSO works once discovery answers', async (t) => {
  const idp = await hostileIdp()
  idp.setHang('/.well-known/openid-configuration', 'no-answer')
  const gw = await startGateway(oidcEnv(idp.issuer, { OIDC_TIMEOUT: '1' }), { upstream: upstream.url })
  t.teardown(() => gw.close())
  t.ok(await eventually(() => idp.hungRequests.some((h) => !h.open), ANSWER_BOUND_MS), 'the first discovery was given up')
  const start = await within(startSso(gw, new CookieJar(), '/after'), ANSWER_BOUND_MS, '/login/oidc answers')
  t.equal(start.response.status, 503)
  t.match(start.body, /cannot be reached right now/)
  const ready = await http(`${gw.url}/_authgate/readyz`)
  t.equal(ready.status, 503, 'AUTH_METHOD=oidc: not ready')
  t.match(JSON.parse(ready.body).checks['oidc'], /failed \d+ times? \(last: operation timed out \[OAUTH_TIMEOUT\]/, 'readiness says discovery timed out')

  idp.setHang('/.well-known/openid-configuration', undefined)
  let status = 0
  for (let i = 0; i < 100 && status !== 302; i++) {
    status = (await startSso(gw, new CookieJar(), '/after')).response.status
    if (status !== 302) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(status, 302, 'SSO starts once discovery answers')
  const jar = new CookieJar()
  const { response } = await hostileLogin(gw, jar, '/after')
  t.equal(response.status, 302, 'and a sign-in completes')
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'mallory')
  t.ok(idp.hungRequests.every((h) => !h.open), 'no discovery request left open')
})

t.test('the IdP down between /login/oidc and the callback: 503 login page; a new sign-in works once it is back', async (t) => {
  const idp = await hostileIdp()
  const capture = logCapture('info')
  const gw = await startSsoGateway(idp.issuer, { OIDC_TIMEOUT: '1' }, upstream.url, { logger: capture.logger })
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const { authorizeUrl } = await startSso(gw, jar, '/after')
  const authorize = await fetchWithJar(jar, authorizeUrl!)
  const callback = deliverToGateway(gw, authorize.headers.get('location')!)

  await idp.goDown()
  const response = await within(fetchWithJar(jar, callback), ANSWER_BOUND_MS, 'the callback answers while the IdP is down')
  await expectProviderUnavailable(t, response)
  const [failure] = failureLines(capture.lines)
  t.equal(failure?.['code'], 'provider-unavailable')
  t.match(String(failure?.['reason']), /^token request to the IdP: no usable answer: fetch failed: .*ECONNREFUSED/, 'the log names the endpoint and why')
  t.equal(await identityAtUpstream(gw, jar, upstream), undefined, 'not signed in')
  const again = await fetchWithJar(jar, callback)
  t.match(await again.text(), /Error code: transaction-missing/, 'the failed flow is spent: its callback cannot be replayed')

  await idp.comeBack()
  const retry = await within(hostileLogin(gw, jar, '/after'), ANSWER_BOUND_MS, 'the retried sign-in answers')
  t.equal(retry.response.status, 302, 'a new sign-in succeeds once the IdP is back')
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'mallory')
})

t.test('a back-channel logout whose JWKS never comes is refused (400) after OIDC_TIMEOUT, the fetch given up', async (t) => {
  const idp = await hostileIdp()
  const gw = await startSsoGateway(idp.issuer, { OIDC_TIMEOUT: '1' }, upstream.url)
  t.teardown(() => gw.close())
  idp.setHang('/jwks', 'no-answer')
  const { privateKey } = await generateKeyPair('RS256')
  const token = await new SignJWT({ sid: 'some-idp-session', events: { 'http://schemas.openid.net/event/backchannel-logout': {} } })
    .setProtectedHeader({ alg: 'RS256', kid: 'rsa-a' }).setIssuer(idp.issuer).setAudience(CLIENT_ID).setIssuedAt().setJti('jti-1').sign(privateKey)
  const answer = await within(fetch(`${gw.url}/auth/oidc/backchannel-logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString()
  }), ANSWER_BOUND_MS, 'the back-channel logout answers')
  t.equal(answer.status, 400, 'refused: the IdP may send it again')
  t.same(await answer.json(), { error: 'invalid_request' })
  const hung = idp.hungRequests.filter((h) => h.path === '/jwks')
  t.equal(hung.length, 1, 'the JWKS was asked for once')
  t.ok(await eventually(() => hung.every((h) => !h.open), ANSWER_BOUND_MS), 'and the request given up')
})
