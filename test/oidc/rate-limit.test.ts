// OIDC_RATE_LIMIT: /login/oidc and /auth/oidc/callback, per client address as the gateway computes
// it (TRUST_PROXY), cannot be used to hammer the IdP: past the limit a 429 (a page for a browser,
// JSON for an API client) with Retry-After, one info line per address and window, a metric. And the
// gateway's state stays bounded under a flood of flow starts: the flows live in the browsers'
// cookies, the limiter tracks at most its cap of addresses.
import t from 'tap'
import { Pool } from 'undici'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startHostileIdp } from '../support/hostile-idp.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, deliverToGateway, hostileLogin, identityAtUpstream, startSsoGateway } from '../support/sso.js'
import type { TestGateway } from '../support/gateway.js'
import { TestClock } from '../support/clock.js'
import { logCapture } from '../support/log-capture.js'
import { scrape } from '../support/metrics.js'
import { http } from '../support/http.js'
import { cookieNames } from '../../src/session/index.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())
const idp = await startHostileIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET })
t.teardown(() => idp.close())

const LIMIT_LINE = 'OIDC_RATE_LIMIT reached by a client address: its SSO requests are refused (429) until its minute ends'

/** GET a gateway path as the client at `from` (X-Forwarded-For, believed with TRUST_PROXY=127.0.0.1). */
const from = async (gw: TestGateway, path: string, address: string, accept = 'application/json'): Promise<ReturnType<typeof http>> =>
  await http(`${gw.url}${path}`, { headers: { 'x-forwarded-for': address, accept } })

t.test('/login/oidc: OIDC_RATE_LIMIT starts per minute per client address, then 429 with Retry-After', async (t) => {
  const clock = new TestClock()
  const capture = logCapture('info')
  const gw = await startSsoGateway(idp.issuer, { OIDC_RATE_LIMIT: '3', TRUST_PROXY: '127.0.0.1' }, upstream.url, { clock, logger: capture.logger })
  t.teardown(() => gw.close())
  for (let i = 1; i <= 3; i++) t.equal((await from(gw, '/login/oidc?next=%2Fx', '203.0.113.5')).status, 302, `start ${i} of 3`)
  const json = await from(gw, '/login/oidc?next=%2Fx', '203.0.113.5')
  t.equal(json.status, 429, 'the fourth is refused')
  t.equal(json.headers['retry-after'], '60', 'Retry-After: until the minute ends (the clock stands still)')
  t.equal(json.headers['cache-control'], 'no-store')
  t.same(JSON.parse(json.body), { error: 'too_many_requests', message: 'Too many single sign-on attempts came from your network address in the last minute. Try again in 60 seconds.' }, 'JSON for an API client')
  t.notOk(json.headers['set-cookie'], 'no transaction cookie: no flow started')
  const page = await from(gw, '/login/oidc?next=%2Fx', '203.0.113.5', 'text/html,application/xhtml+xml')
  t.equal(page.status, 429)
  t.equal(page.headers['retry-after'], '60')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<h1>Too many sign-in attempts<\/h1>/, 'a page for a browser')
  t.match(page.body, /Try again in 60 seconds\./)
  t.match(page.body, /<a class="button" href="\/login\/oidc\?next=%2Fx">Try again<\/a>/, 'its link starts the sign-in again')
  t.match(page.headers['content-security-policy'], /default-src 'none'/, 'with the pages\' security headers')

  t.equal((await from(gw, '/login/oidc', '203.0.113.6')).status, 302, 'another address has its own budget')
  t.equal((await from(gw, '/login/oidc', '2001:db8:1:2::1')).status, 302)

  const lines = capture.lines().filter((l) => l['msg'] === LIMIT_LINE)
  t.equal(lines.length, 1, 'two refusals, one log line (per address and window)')
  t.match(lines[0], { level: 30, ip: '203.0.113.5', route: '/login/oidc', limit: 3, retryAfter: 60 })
  const metrics = await scrape(`${gw.url}/_authgate/metrics`)
  t.equal(metrics.value('authgate_oidc_rate_limited_total', { route: 'start' }), 2, 'both refusals counted')
  t.equal(metrics.value('authgate_oidc_rate_limited_total', { route: 'callback' }), 0)
  t.equal(metrics.value('authgate_oidc_rate_limit_addresses', { route: 'start' }), 3, 'three addresses tracked')

  clock.advance(59_000)
  const soon = await from(gw, '/login/oidc', '203.0.113.5')
  t.equal(soon.status, 429)
  t.equal(soon.headers['retry-after'], '1', 'Retry-After counts down')
  clock.advance(1_000)
  const window2 = []
  for (let i = 0; i < 4; i++) window2.push((await from(gw, '/login/oidc', '203.0.113.5')).status)
  t.same(window2, [302, 302, 302, 429], 'a new minute, a new budget')
  t.equal(capture.lines().filter((l) => l['msg'] === LIMIT_LINE).length, 2, 'the refusal of the second window was logged too')
  clock.advance(60_000)
  t.equal((await from(gw, '/login/oidc', '203.0.113.5')).status, 302)
  t.equal((await scrape(`${gw.url}/_authgate/metrics`)).value('authgate_oidc_rate_limit_addresses', { route: 'start' }), 1, 'ended windows dropped')
})

t.test('/auth/oidc/callback: limited on its own budget, before anything reaches the IdP; the flow survives the wait', async (t) => {
  const clock = new TestClock()
  const gw = await startSsoGateway(idp.issuer, { OIDC_RATE_LIMIT: '2', TRUST_PROXY: '127.0.0.1' }, upstream.url, { clock })
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const xff = { 'x-forwarded-for': '198.51.100.9' }
  const start = await fetchWithJar(jar, `${gw.url}/login/oidc?next=%2Fafter`, { headers: xff })
  t.equal(start.status, 302)
  const authorize = await fetchWithJar(jar, start.headers.get('location')!)
  const callback = deliverToGateway(gw, authorize.headers.get('location')!)
  // Two callbacks without a flow spend the address's budget (refused for their own reason, 400).
  for (let i = 0; i < 2; i++) t.equal((await from(gw, '/auth/oidc/callback?state=x', '198.51.100.9')).status, 400)

  const tokenCalls = idp.tokenRequests.length
  const refused = await fetchWithJar(jar, callback, { headers: { ...xff, accept: 'text/html' } })
  const body = await refused.text()
  t.equal(refused.status, 429, 'the real callback is refused too')
  t.equal(refused.headers.get('retry-after'), '60')
  t.match(body, /<a class="button" href="\/login">Back to sign-in<\/a>/, 'its page links to the login page, not to the code-bearing URL')
  t.equal(idp.tokenRequests.length, tokenCalls, 'nothing reached the IdP')
  t.same(refused.headers.getSetCookie(), [], 'no cookie set or cleared')
  t.equal((await from(gw, '/login/oidc', '198.51.100.9')).status, 302, 'starts have their own budget')

  clock.advance(60_000)
  const done = await fetchWithJar(jar, callback, { headers: xff })
  t.equal(done.status, 302, 'after the wait, the same callback completes the sign-in: its transaction cookie was kept')
  t.equal(done.headers.get('location'), '/after')
  t.equal((await identityAtUpstream(gw, jar, upstream))?.user, 'mallory')
  t.equal((await scrape(`${gw.url}/_authgate/metrics`)).value('authgate_oidc_rate_limited_total', { route: 'callback' }), 1)
})

t.test('without TRUST_PROXY a client cannot buy fresh budgets with X-Forwarded-For', async (t) => {
  const gw = await startSsoGateway(idp.issuer, { OIDC_RATE_LIMIT: '2' }, upstream.url)
  t.teardown(() => gw.close())
  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await from(gw, '/login/oidc', `203.0.113.${i + 1}`)).status)
  t.same(statuses, [302, 302, 429, 429], 'counted by the connection\'s address, 127.0.0.1')
})

t.test('OIDC_RATE_LIMIT=0: no limit, nothing tracked', async (t) => {
  const gw = await startSsoGateway(idp.issuer, { OIDC_RATE_LIMIT: '0' }, upstream.url)
  t.teardown(() => gw.close())
  const statuses = new Set<number>()
  for (let i = 0; i < 100; i++) statuses.add((await http(`${gw.url}/login/oidc`)).status)
  t.same([...statuses], [302], '100 starts from one address, all redirected')
  const metrics = await scrape(`${gw.url}/_authgate/metrics`)
  t.equal(metrics.value('authgate_oidc_rate_limit_addresses', { route: 'start' }), 0)
  t.equal(metrics.value('authgate_oidc_rate_limited_total', { route: 'start' }), 0)
})

t.test('a sign-in through the limit: a person is never near it', async (t) => {
  const gw = await startSsoGateway(idp.issuer, {}, upstream.url)
  t.teardown(() => gw.close())
  const jar = new CookieJar()
  const { response } = await hostileLogin(gw, jar, '/after')
  t.equal(response.status, 302, 'signed in with the default limit')
  t.equal(gw.config.oidcRateLimit, 120, 'the default: 120 a minute')
})

// Ten times the cap, as the default cap (10,000) would take 100,000 starts: what the limiter does at
// its cap does not depend on the cap's size (src/net/rate-limit.ts), and a per-flow row or entry
// would show as 1,000 in the counts below as plainly as 10,000.
t.test('1,000 flow starts from 1,000 addresses: no server-side state per flow, the limiter capped', async (t) => {
  const CAP = 100
  const FLOWS = 1000
  const gw = await startSsoGateway(idp.issuer, { TRUST_PROXY: '127.0.0.1' }, upstream.url, { oidcRateLimitAddresses: CAP })
  t.teardown(() => gw.close())
  const idpCalls = idp.calls.length
  const rows = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (const table of ['users', 'sessions', 'login_throttle', 'logout_token_ids'] as const) {
      const { n } = await gw.db.kysely.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      out[table] = Number(n)
    }
    return out
  }
  const rowsBefore = await rows()

  // Cookie-less clients, as a flood would be: each start is a new flow, from its own address.
  const pool = new Pool(gw.url, { connections: 8 })
  t.teardown(() => pool.close())
  const statuses = new Map<number, number>()
  let withCookie = 0
  let first: { location: string, cookie: string } | undefined
  let second: { location: string } | undefined
  let largestTracked = 0
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < FLOWS) {
      const i = next++
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
      const res = await pool.request({ path: '/login/oidc?next=%2Fafter', method: 'GET', headers: { 'x-forwarded-for': address } })
      await res.body.text()
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      const setCookie = [res.headers['set-cookie'] ?? []].flat()
      if (setCookie.some((c) => c.startsWith(cookieNames(gw.config.sessionCookieSecure).oidcPrefix))) withCookie++
      if (i === 0) first = { location: String(res.headers.location), cookie: setCookie.map((c) => c.split(';', 1)[0]!).join('; ') }
      if (i === 1) second = { location: String(res.headers.location) }
      if (i % 100 === 99) {
        const tracked = (await scrape(`${gw.url}/_authgate/metrics`)).value('authgate_oidc_rate_limit_addresses', { route: 'start' }) ?? 0
        largestTracked = Math.max(largestTracked, tracked)
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))

  t.same(Object.fromEntries(statuses), { 302: FLOWS }, 'every start redirected to the IdP (one per address: within the limit)')
  t.equal(withCookie, FLOWS, 'each carried its flow in a transaction cookie')
  const metrics = await scrape(`${gw.url}/_authgate/metrics`)
  const tracked = metrics.value('authgate_oidc_rate_limit_addresses', { route: 'start' })
  t.equal(tracked, CAP, `the limiter tracks its cap of addresses, not ${FLOWS}`)
  t.ok(largestTracked <= CAP, `never more along the way (largest seen ${largestTracked})`)
  t.equal(metrics.value('authgate_oidc_rate_limited_total', { route: 'start' }), 0)
  t.equal(idp.calls.length, idpCalls, 'starting a flow sends nothing to the IdP')
  t.same(await rows(), rowsBefore, 'and writes nothing to the database')

  // The flows are in the cookies alone: the first one completes with its cookie, 999 starts later.
  const jar = new CookieJar()
  const authorize = await fetchWithJar(jar, first!.location)
  const callback = deliverToGateway(gw, authorize.headers.get('location')!)
  const done = await fetch(callback, { redirect: 'manual', headers: { cookie: first!.cookie, 'x-forwarded-for': '10.0.0.0' } })
  await done.text()
  t.equal(done.status, 302, 'the first flow, completed with its own cookie')
  t.equal(done.headers.get('location'), '/after')
  // and one whose cookie the client dropped is simply gone: the gateway kept nothing of it.
  const dropped = await fetchWithJar(new CookieJar(), second!.location)
  const orphan = await fetch(deliverToGateway(gw, dropped.headers.get('location')!), { redirect: 'manual', headers: { 'x-forwarded-for': '10.0.0.1' } })
  t.match(await orphan.text(), /Error code: transaction-missing/, 'a flow without its cookie: nothing on the server to resume')
})
