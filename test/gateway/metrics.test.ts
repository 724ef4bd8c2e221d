// Metrics as an operator scrapes them: on METRICS_PORT's own listener (and 404 on the public port),
// and every family moving when its event happens, against the real gateway and real upstreams.
import t from 'tap'
import { request } from 'undici'
import WebSocket from 'ws'
import { once } from 'node:events'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { scrape } from '../support/metrics.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { hashPassword } from '../../src/auth/local/password.js'
import { newSessionId, newSessionPayload } from '../../src/session/session.js'

const upstream = await startUpstream()
t.teardown(() => upstream.close())

/** The value of one sample now (0 when the series does not exist yet). */
async function sample (gw: TestGateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  return (await scrape(gw.metricsUrl! + '/metrics')).value(name, labels) ?? 0
}

/** How much `name{labels}` moved while `action` ran. */
async function moved (gw: TestGateway, name: string, labels: Record<string, string>, action: () => Promise<unknown>): Promise<number> {
  const before = await sample(gw, name, labels)
  await action()
  return (await sample(gw, name, labels)) - before
}

t.test('METRICS_PORT: metrics and the detailed readiness on their own listener, not on the public port', async (t) => {
  const gw = await startGateway({ METRICS_PORT: '9464' }, { upstream: upstream.url })
  t.teardown(() => gw.close())
  t.ok(gw.metricsUrl, 'a second listener')

  const metrics = await scrape(gw.metricsUrl! + '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.contentType, /^text\/plain; version=0\.0\.4/)
  for (const name of ['process_cpu_user_seconds_total', 'process_start_time_seconds', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(metrics.value(name) !== undefined, `default process metric ${name}`)
  }
  t.equal(metrics.value('authgate_request_duration_seconds_count', { decision: 'proxied' }), 0, 'every decision present from the start')
  t.equal(metrics.value('authgate_logins_total', { method: 'oidc' }), 0)
  t.equal(metrics.value('authgate_websockets_open'), 0)

  const publicMetrics = await http(gw.url + '/_authgate/metrics')
  t.equal(publicMetrics.status, 404, '/_authgate/metrics is not on the public port')
  t.same(JSON.parse(publicMetrics.body), { error: 'not_found' })

  const detailed = await http(gw.metricsUrl! + '/readyz')
  t.equal(detailed.status, 200)
  t.same(JSON.parse(detailed.body), { status: 'ready', checks: { database: 'ok', revocations: 'ok' } })
  const brief = await http(gw.url + '/_authgate/readyz')
  t.equal(brief.status, 200)
  t.same(JSON.parse(brief.body), { status: 'ready' }, 'the public port says ready or not, without the reasons')
  t.equal((await http(gw.metricsUrl! + '/healthz')).status, 200)
  t.equal((await http(gw.url + '/_authgate/healthz')).status, 200, 'liveness stays on the public port for probes')

  for (const path of ['/', '/login', '/_authgate/metrics', '/_authgate/auth']) {
    t.equal((await http(gw.metricsUrl! + path)).status, 404, `the metrics listener serves nothing else: ${path}`)
  }
  t.equal(upstream.received.length, 0, 'nothing reached the upstream through it')
})

t.test('without METRICS_PORT: on the public port, as before', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(() => gw.close())
  t.equal(gw.metricsUrl, undefined)
  const metrics = await scrape(gw.url + '/_authgate/metrics')
  t.equal(metrics.status, 200)
  t.ok(metrics.value('process_cpu_user_seconds_total') !== undefined)
  t.same(JSON.parse((await http(gw.url + '/_authgate/readyz')).body).checks, { database: 'ok', revocations: 'ok' }, 'readiness with its reasons')
})

t.test('each family moves when its event happens', async (t) => {
  const gw = await startGateway({
    METRICS_PORT: '9464',
    LOCAL_AUTH: 'password',
    SKIP_AUTH_PATHS: '/public/',
    UPSTREAM_POOL_SIZE: '2',
    CLIENT_MAX_CONCURRENT_REQUESTS: '1'
  }, { upstream: upstream.url, revocationRefreshMs: 100 })
  t.teardown(() => gw.close())
  const passwordHash = await hashPassword('correct horse')
  for (const username of ['alice', 'dave', 'erin', 'frank']) await gw.users.create({ username, passwordHash })
  await gw.users.setActive('dave', false)

  const duration = (decision: string): Record<string, string> => ({ decision })
  const count = 'authgate_request_duration_seconds_count'
  let cookie = ''

  await t.test('sign-ins by method, refusals by method and reason', async (t) => {
    t.equal(await moved(gw, 'authgate_logins_total', { method: 'local' }, async () => {
      const { cookies, response } = await loginLocal(gw.url, 'alice', { password: 'correct horse' })
      t.equal(response.status, 303)
      cookie = cookieHeader(cookies)
    }), 1, 'a sign-in')
    const failures = [
      ['invalid-credentials', async () => await loginLocal(gw.url, 'alice', { password: 'wrong' })],
      ['invalid-credentials', async () => await loginLocal(gw.url, 'nobody', { password: 'wrong' })],
      ['disabled', async () => await loginLocal(gw.url, 'dave', { password: 'correct horse' })],
      ['invalid-username', async () => await loginLocal(gw.url, 'no such name!', { password: 'x' })],
      ['csrf', async () => await http(gw.url + '/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=correct+horse' })]
    ] as const
    for (const [reason, attempt] of failures) {
      t.equal(await moved(gw, 'authgate_login_failures_total', { method: 'local', reason }, attempt), 1, reason)
    }
    t.equal(await sample(gw, 'authgate_logins_total', { method: 'local' }), 1, 'no failure counted as a sign-in')
  })

  await t.test('request durations by access decision', async (t) => {
    const cases: Array<[string, () => Promise<number>, number]> = [
      ['proxied', async () => (await http(gw.url + '/app', { headers: { cookie } })).status, 200],
      ['skipped', async () => (await http(gw.url + '/public/x')).status, 200],
      ['login-redirect', async () => (await http(gw.url + '/app', { headers: { accept: 'text/html' } })).status, 302],
      ['refused', async () => (await http(gw.url + '/app')).status, 401],
      ['forward-auth', async () => (await http(gw.url + '/_authgate/auth', { headers: { cookie } })).status, 200],
      ['forward-auth-refused', async () => (await http(gw.url + '/_authgate/auth')).status, 401],
      ['gateway', async () => (await http(gw.url + '/login')).status, 200]
    ]
    for (const [decision, send, status] of cases) {
      t.equal(await moved(gw, count, duration(decision), async () => { t.equal(await send(), status, `${decision}: ${status}`) }), 1, decision)
    }
    const metrics = await scrape(gw.metricsUrl! + '/metrics')
    const proxied = metrics.value(count, duration('proxied'))!
    t.equal(metrics.value('authgate_request_duration_seconds_bucket', { decision: 'proxied', le: '+Inf' }), proxied, 'the +Inf bucket holds them all')
    t.ok(metrics.value('authgate_request_duration_seconds_sum', duration('proxied'))! > 0, 'and their seconds add up')

    // The one slot this address has is held by a stream: the next request is refused (429).
    const stream = await request(gw.url + '/events', { headers: { cookie } })
    t.equal(stream.statusCode, 200)
    t.equal(await moved(gw, count, duration('client-limit'), async () => { t.equal((await http(gw.url + '/app', { headers: { cookie } })).status, 429) }), 1, 'client-limit')
    t.equal(await sample(gw, 'authgate_client_requests_refused_total', { reason: 'too_many' }), 1)
    stream.body.destroy()
  })

  await t.test('session refusals by reason', async (t) => {
    const name = gw.config.sessionCookieSecure ? '__Host-authgate' : 'authgate'
    const user = (await gw.users.findByUsername('erin'))!
    const now = Math.floor(Date.now() / 1000)
    /** A cookie the gateway's own key sealed, holding whatever payload the test chose. */
    const sealed = (s: unknown): string => `${name}=${encodeURIComponent(gw.app.encodeSecureSession(gw.app.createSecureSession({ s })))}`
    const payload = (iat: number, maxAge = 3600): ReturnType<typeof newSessionPayload> => newSessionPayload(newSessionId(), { ...user, groups: [] }, 'local', maxAge, iat)
    const refusal = async (reason: string, cookieValue: string): Promise<void> => {
      t.equal(await moved(gw, 'authgate_session_refusals_total', { reason }, async () => {
        t.equal((await http(gw.url + '/app', { headers: { cookie: cookieValue } })).status, 401, `${reason}: not signed in`)
      }), 1, reason)
    }
    t.equal((await http(gw.url + '/app', { headers: { cookie: sealed(payload(now)) } })).status, 200, 'the sealing is the gateway\'s own: a current payload is a session')
    await refusal('unreadable', `${name}=${encodeURIComponent('bm90IGEgc2Vzc2lvbg==;AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')}`)
    await refusal('malformed', sealed({ v: 1, u: 'erin', a: true }))
    await refusal('expired', sealed(payload(now - 7200)))
    await refusal('issued-in-future', sealed(payload(now + 600)))
    await refusal('too-long', sealed(payload(now, 400 * 86400)))

    // Signed out: a copy of the cookie is refused as ended.
    const frank = cookieHeader((await loginLocal(gw.url, 'frank', { password: 'correct horse' })).cookies)
    t.equal((await http(gw.url + '/logout', { headers: { cookie: frank } })).status, 303)
    await refusal('ended', frank)

    // Other instances learn of revocations at their next refresh (every 100 ms here): refused from then on.
    const refusedAfterRefresh = async (reason: string, cookieValue: string): Promise<void> => {
      t.equal(await moved(gw, 'authgate_session_refusals_total', { reason }, async () => {
        let status = 200
        for (let i = 0; i < 100 && status === 200; i++) {
          // A request proxied just before the refresh is cut off by it (its session ended mid-answer):
          // not refused yet either, ask again.
          status = await http(gw.url + '/app', { headers: { cookie: cookieValue } }).then((r) => r.status, (err: { code?: string }) => {
            if (err.code === 'UND_ERR_SOCKET') return 200
            throw err
          })
          if (status === 200) await sleep(50)
        }
        t.equal(status, 401, `${reason}: not signed in`)
      }), 1, reason)
    }
    const erin = cookieHeader((await loginLocal(gw.url, 'erin', { password: 'correct horse' })).cookies)
    await gw.users.revokeSessions('erin', new Date(Date.now() + 1000))
    await refusedAfterRefresh('revoked', erin)
    await gw.users.setActive('alice', false)
    await refusedAfterRefresh('disabled', cookie)
    t.equal(await sample(gw, 'authgate_session_refusals_total', { reason: 'unreadable' }), 1, 'requests without a cookie are not refusals')
  })

  await t.test('upstream errors', async (t) => {
    const down = await startGateway({ METRICS_PORT: '9464', SKIP_AUTH_PATHS: '/public/' }, { upstream: 'http://127.0.0.1:9' })
    t.teardown(() => down.close())
    t.equal(await moved(down, 'authgate_upstream_errors_total', { kind: 'unreachable' }, async () => {
      t.equal((await http(down.url + '/public/x')).status, 502)
    }), 1)
  })
})

t.test('open WebSockets: counted while both sides are connected', async (t) => {
  const wsUpstream = await startWsUpstream()
  const gw = await startGateway({ METRICS_PORT: '9464' }, { upstream: wsUpstream.url })
  t.teardown(async () => { await gw.close(); await wsUpstream.close() })
  const cookie = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
  const open = async (): Promise<WebSocket> => {
    const ws = new WebSocket(gw.url.replace(/^http/, 'ws') + '/socket', { headers: { cookie } })
    await once(ws, 'open')
    // One round trip: the upstream side is connected by then.
    ws.send('ping')
    await once(ws, 'message')
    return ws
  }
  const gauge = async (): Promise<number> => await sample(gw, 'authgate_websockets_open')
  const first = await open()
  const second = await open()
  t.equal(await gauge(), 2)
  first.close()
  await once(first, 'close')
  t.ok(await eventuallyAsync(async () => await gauge() === 1), 'one closed by its client')
  second.send('close:4000:bye')
  await once(second, 'close')
  t.ok(await eventuallyAsync(async () => await gauge() === 0), 'one closed by the upstream')
})

async function eventuallyAsync (condition: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return true
}
