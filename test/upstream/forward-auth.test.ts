// /_authgate/auth against the live gateway, as nginx auth_request, ingress-nginx, Traefik and Caddy
// call it. (The real-nginx run is forward-auth-nginx.test.ts.)
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { cookieHeader, http, loginLocal, rawRequest } from '../support/http.js'
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

t.test('ACCESS_RULES: 403 when any reported URI is refused, 401 still without a session', async (t) => {
  const ruled = await startGateway({ ACCESS_RULES: '/admin=admin', ADMIN_USERNAMES: 'root' }, { upstream: UPSTREAM })
  t.teardown(ruled.close)
  const check = ruled.url + '/_authgate/auth'
  const carol = cookieHeader((await loginLocal(ruled.url, 'carol')).cookies)
  const root = cookieHeader((await loginLocal(ruled.url, 'root')).cookies)
  const refusals = async (reason: string): Promise<number> => (await scrape(ruled.url + '/_authgate/metrics')).value('authgate_access_refusals_total', { reason }) ?? NaN

  const allowed: Array<[string, Record<string, string>]> = [
    ['carol', { 'x-forwarded-uri': '/projects?x=1' }],
    ['carol', { 'x-original-uri': '/administrator' }],
    ['carol', { 'x-original-url': 'https://tt.example.test/reports/1' }],
    ['carol', { 'x-forwarded-uri': '/projects', 'x-original-uri': '/projects' }],
    ['root', { 'x-original-uri': '/admin/users' }],
    ['root', { 'x-forwarded-uri': '/%61dmin', 'x-original-url': 'https://tt.example.test/admin' }]
  ]
  for (const [who, headers] of allowed) {
    const res = await http(check, { headers: { cookie: who === 'root' ? root : carol, ...headers } })
    t.equal(res.status, 200, `${who}: ${JSON.stringify(headers)}`)
    t.equal(res.headers['x-user'], who)
    t.ok(verifyIdentityHeaders(res.headers as Record<string, string>, HEADER_SIGNING_SECRET).ok, 'signed identity headers')
  }

  const rule = await refusals('rule')
  const refused: Array<Record<string, string>> = [
    { 'x-forwarded-uri': '/admin' },
    { 'x-original-uri': '/admin/users?page=2' },
    { 'x-original-url': 'https://tt.example.test/admin/x' },
    { 'x-forwarded-uri': '/ADMIN' },
    { 'x-original-uri': '/%61dmin' },
    { 'x-original-uri': '/x/..%2Fadmin' },
    { 'x-original-uri': '//admin' },
    // A client's forged X-Forwarded-Uri beside the URI nginx set: every reported URI must pass.
    { 'x-forwarded-uri': '/ok', 'x-original-uri': '/admin' },
    { 'x-original-uri': '/ok', 'x-original-url': 'https://tt.example.test/admin' }
  ]
  for (const headers of refused) {
    const res = await http(check, { headers: { cookie: carol, ...headers, accept: 'text/html' } })
    t.equal(res.status, 403, JSON.stringify(headers))
    t.same(JSON.parse(res.body), { error: 'forbidden' })
    t.equal(res.headers['cache-control'], 'no-store')
    t.notOk(IDENTITY.some((h) => h in res.headers), 'no identity headers')
  }
  t.equal(await refusals('rule') - rule, refused.length, 'counted as reason "rule"')

  const unreported = await refusals('no-reported-uri')
  const none = await http(check, { headers: { cookie: carol } })
  t.equal(none.status, 403, 'no URI reported: the rules cannot be checked, so no')
  t.equal((await http(check, { headers: { cookie: root } })).status, 403, 'not even for an admin')
  t.equal(await refusals('no-reported-uri') - unreported, 2)

  const ambiguous = await refusals('ambiguous-path')
  // Node joins a repeated header into "/ok, /admin", one path no rule covers: the raw header lines decide.
  const repeats = [['X-Original-URI: /ok', 'X-Original-URI: /admin'], ['X-Forwarded-Uri: /ok', 'x-forwarded-uri: /admin'],
    ['X-Original-URL: https://tt.example.test/ok', 'X-Original-URL: https://tt.example.test/admin'], ['X-Original-URI: /a', 'X-Original-URI: /b']]
  for (const lines of repeats) {
    const repeated = await rawRequest(ruled.url, ['GET /_authgate/auth HTTP/1.1', 'Host: gw', `Cookie: ${carol}`, ...lines, 'Connection: close'].join('\n'))
    t.equal(repeated.status, 403, `a repeated URI header, which the proxy cannot have meant: ${lines.join(' + ')}`)
  }
  for (const headers of [{ 'x-forwarded-uri': 'https://evil.example/ok' }, { 'x-original-url': 'not a url' }, { 'x-original-uri': '/%2525252561dmin' }] as Array<Record<string, string>>) {
    t.equal((await http(check, { headers: { cookie: root, ...headers } })).status, 403, JSON.stringify(headers))
  }
  t.equal(await refusals('ambiguous-path') - ambiguous, repeats.length + 3)

  for (const headers of [{ 'x-original-uri': '/admin' }, {}] as Array<Record<string, string>>) {
    const res = await http(check, { headers: { ...headers, accept: 'application/json' } })
    t.equal(res.status, 401, `no session: 401, not 403 (${JSON.stringify(headers)})`)
  }
  const login = await http(check + '?redirect=true', { headers: { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/admin/x', accept: 'text/html' } })
  t.equal(login.status, 302, '?redirect=true: the login redirect as before')
  t.equal(login.headers.location, '/login?next=%2Fadmin%2Fx')
})
