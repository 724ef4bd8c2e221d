// /_authgate/auth against the live gateway, as nginx auth_request, ingress-nginx, Traefik and Caddy
// call it. (The real-nginx run is forward-auth-nginx.test.ts.)
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { scrape } from '../support/metrics.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const UPSTREAM = 'http://127.0.0.1:5000'
const gateway = await startGateway({ IDENTITY_JWT: 'true', PUBLIC_URL: 'http://tt.example.test', IDENTITY_JWT_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }, { upstream: UPSTREAM })
t.teardown(gateway.close)
const auth = gateway.url + '/_authgate/auth'
const cookie = cookieHeader((await loginLocal(gateway.url, 'alice')).cookies)
const IDENTITY = ['x-user', 'x-admin', 'x-email', 'x-full-name', 'x-groups', 'x-auth-timestamp', 'x-auth-signature', 'x-identity-assertion']

t.test('no session: 401 JSON for every kind of request, never a redirect by default', async (t) => {
  const variants: Array<Record<string, string>> = [{}, { accept: 'text/html' }, { 'x-original-method': 'GET', 'x-original-uri': '/x', accept: 'text/html,*/*' }, { cookie: 'authgate=forged' }]
  for (const headers of variants) {
    const res = await http(auth, { headers: { ...headers, 'x-user': 'admin', 'x-auth-signature': 'v1=' + '0'.repeat(64) } })
    t.equal(res.status, 401, JSON.stringify(headers))
    t.same(JSON.parse(res.body), { error: 'unauthenticated' })
    t.equal(res.headers['cache-control'], 'no-store')
    t.notOk(IDENTITY.some((h) => h in res.headers), 'no identity headers')
  }
})

t.test('a valid session: 200 with every identity header, signed, plus the assertion', async (t) => {
  const res = await http(auth, { headers: { cookie, 'x-original-uri': '/projects', 'x-user': 'mallory' } })
  t.equal(res.status, 200)
  t.equal(res.body, '')
  t.equal(res.headers['cache-control'], 'no-store')
  for (const h of IDENTITY) t.ok(h in res.headers, `${h} present (Caddy copies only headers that exist)`)
  t.equal(res.headers['x-email'], '', 'unknown values are present and empty')
  const verified = verifyIdentityHeaders(res.headers as Record<string, string>, HEADER_SIGNING_SECRET)
  t.ok(verified.ok)
  t.equal(verified.ok && verified.identity.username, 'alice')
  const jwks = createRemoteJWKSet(new URL(gateway.url + '/_authgate/jwks.json'))
  const { payload } = await jwtVerify(res.headers['x-identity-assertion'] as string, jwks, { issuer: 'http://tt.example.test', audience: UPSTREAM })
  t.equal(payload.preferred_username, 'alice')
})

t.test('any method, any content type, no body: the subrequest nginx makes for a POST', async (t) => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']) {
    for (const type of ['application/json', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'text/plain']) {
      const res = await http(auth, { method, headers: { cookie, 'content-type': type } })
      t.equal(res.status, 200, `${method} ${type}`)
    }
  }
  const withBody = await http(auth, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{not json' })
  t.equal(withBody.status, 200, 'a body, if any, is ignored')
  t.equal((await http(auth, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401)
})

t.test('?redirect=true: browser navigations get a 302 to the login page with the original URI', async (t) => {
  const html = { accept: 'text/html,application/xhtml+xml' }
  const cases: Array<[Record<string, string>, number, string?]> = [
    [{ ...html, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/projects/4?tab=time' }, 302, '/login?next=%2Fprojects%2F4%3Ftab%3Dtime'],
    [{ ...html, 'x-original-method': 'GET', 'x-original-uri': '/reports' }, 302, '/login?next=%2Freports'],
    [{ ...html, 'x-original-url': 'https://tt.example.test/a?b=1' }, 302, '/login?next=%2Fa%3Fb%3D1'],
    [{ ...html, 'x-forwarded-uri': '//evil.example/' }, 302, '/login?next=%2F'],
    [{ ...html, 'x-forwarded-uri': '/login' }, 302, '/login?next=%2F'],
    [{ ...html, 'x-original-url': 'not a url' }, 302, '/login?next=%2F'],
    [{ ...html, 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/form' }, 401],
    [{ accept: 'application/json', 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/api' }, 401]
  ]
  for (const [headers, status, location] of cases) {
    const res = await http(auth + '?redirect=true', { headers })
    t.equal(res.status, status, JSON.stringify(headers))
    if (location !== undefined) t.equal(res.headers.location, location)
  }
  t.equal((await http(auth + '?redirect=true', { headers: { cookie, ...html } })).status, 200, 'a session still gets 200')
})

t.test('forward-auth decisions are counted', async (t) => {
  const metrics = await scrape(gateway.url + '/_authgate/metrics')
  t.ok(metrics.value('authgate_request_duration_seconds_count', { decision: 'forward-auth' })! > 0, 'sessions answered 200')
  t.ok(metrics.value('authgate_request_duration_seconds_count', { decision: 'forward-auth-refused' })! > 0, 'no session: 401 or the login redirect')
})
