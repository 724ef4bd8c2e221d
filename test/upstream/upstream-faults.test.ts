// The application behind the gateway failing, on real sockets: refusing connections, resetting them
// before or during its answer, hanging before its headers, and answering 503. Users get a 502/504
// page (API clients JSON) or an answer visibly cut short, never a hang; each failure is one log line
// with its reason (no stack trace) and a metric; other requests go on; long-polls and event streams
// that pause for longer than UPSTREAM_HEADER_TIMEOUT still work; an overloaded application's 503 is
// passed on once, never retried. Nothing here waits on a clock: a pause "longer than the header
// timeout" lasts until a request that hangs at the upstream has been answered 504.
import t, { type Test as Tap } from 'tap'
import { createServer } from 'node:net'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js'
import { cookieHeader, http, loginLocal, type Response } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'
import { scrape } from '../support/metrics.js'
import { eventually, within } from '../support/within.js'

/** Generous bound for anything that should happen at once or after a 1 s header timeout. */
const BOUND_MS = 20_000

type Lines = () => Array<Record<string, unknown>>

interface Client { gw: TestGateway, cookie: string }
interface Setup extends Client { upstream: FaultUpstream, lines: Lines }

async function setup (t: Tap, env: Record<string, string> = {}): Promise<Setup> {
  const upstream = await startFaultUpstream()
  const log = logCapture('info')
  const gw = await startGateway(env, { upstream: upstream.url, logger: log.logger })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const cookie = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
  return { gw, upstream, cookie, lines: log.lines }
}

const api = async (s: Client, path: string, init: { method?: string, body?: string } = {}): Promise<Response> =>
  within(http(s.gw.url + path, { ...init, headers: { cookie: s.cookie, accept: 'application/json' } }), BOUND_MS, `${path} answered`)
const page = async (s: Client, path: string): Promise<Response> =>
  within(http(s.gw.url + path, { headers: { cookie: s.cookie, accept: 'text/html' } }), BOUND_MS, `${path} answered`)

/** The log lines of the request answered with this id. */
const linesOf = (lines: Lines, res: Response): Array<Record<string, unknown>> => lines().filter((l) => l.reqId === res.headers['x-request-id'])
const warnings = (lines: Lines): Array<Record<string, unknown>> => lines().filter((l) => (l.level as number) >= 40)
const upstreamErrors = async (gw: TestGateway, kind: string): Promise<number | undefined> =>
  (await scrape(gw.url + '/_authgate/metrics')).value('authgate_upstream_errors_total', { kind })

/** No log line of this gateway carries a stack trace, and reply-from's own failure line never appears. */
function noStackTraces (t: Tap, lines: Lines): void {
  t.notOk(JSON.stringify(lines()).includes('"stack"'), 'no stack trace in any log line')
  t.same(lines().filter((l) => l.msg === 'response errored'), [], 'no second line from the proxy library')
}

/** Polls `condition` (it may scrape or fetch) until it holds, at most `boundMs`; returns whether it did. */
async function until (condition: () => Promise<boolean>, boundMs: number): Promise<boolean> {
  const deadline = Date.now() + boundMs
  while (!(await condition())) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

/** A port nothing listens on (bound, then closed). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

t.test('upstream refusing connections: 502 page or JSON, one log line with the reason, counted; the gateway goes on and recovers', async (t) => {
  const port = await closedPort()
  const log = logCapture('info')
  const gw = await startGateway({}, { upstream: `http://127.0.0.1:${port}`, logger: log.logger })
  t.teardown(gw.close)
  const s = { gw, cookie: cookieHeader((await loginLocal(gw.url, 'alice')).cookies) }

  const html = await page(s, '/reports?week=2')
  t.equal(html.status, 502)
  t.match(String(html.headers['content-type']), /^text\/html/)
  t.match(html.body, /The application is not reachable/)
  t.match(html.body, /href="\/reports\?week=2"/, 'with a link to try again')
  t.notMatch(html.body, /ECONNREFUSED|127\.0\.0\.1|at .*\.js/, 'no internals shown')
  t.match(String(html.headers['content-security-policy']), /default-src/, 'the gateway pages\' security headers')
  t.equal(html.headers['cache-control'], 'no-store', 'not cached')
  const json = await api(s, '/api/x')
  t.equal(json.status, 502)
  t.same(JSON.parse(json.body), { error: 'bad_gateway' })

  const [line, ...more] = linesOf(log.lines, json).filter((l) => (l.level as number) >= 40)
  t.same(more, [], 'one warning per failed request')
  t.match(line, { level: 40, msg: 'upstream request failed', kind: 'unreachable', reason: 'ECONNREFUSED', status: 502, method: 'GET', path: '/api/x' })
  t.match(String(line?.err), /ECONNREFUSED/, 'the reason as the system gave it')
  t.match(linesOf(log.lines, json).find((l) => l.msg === 'request'), { status: 502 }, 'and the access line')
  noStackTraces(t, log.lines)
  t.equal(await upstreamErrors(gw, 'unreachable'), 2)

  t.equal((await http(gw.url + '/_authgate/healthz')).status, 200, 'the gateway itself is fine')
  t.equal((await http(gw.url + '/login')).status, 200, 'and its own pages work')
  const back = await startFaultUpstream(port)
  t.teardown(back.close)
  t.equal((await api(s, '/api/x')).status, 200, 'recovers as soon as the upstream listens again, without a restart')
})

t.test('upstream resetting the connection', async (t) => {
  const s = await setup(t)

  t.test('before its headers: 502, not retried, logged and counted', async (t) => {
    const json = await api(s, '/reset-before')
    t.equal(json.status, 502)
    t.same(JSON.parse(json.body), { error: 'bad_gateway' })
    t.equal(s.upstream.hits('/reset-before'), 1, 'the upstream saw one request: a GET is not retried')
    const post = await api(s, '/reset-before', { method: 'POST', body: 'x=1' })
    t.equal(post.status, 502)
    t.equal(s.upstream.hits('/reset-before'), 2, 'nor a POST')
    const html = await page(s, '/reset-before')
    t.equal(html.status, 502)
    t.match(html.body, /The application closed the connection/)
    t.match(linesOf(s.lines, json).filter((l) => (l.level as number) >= 40), [{ msg: 'upstream request failed', kind: 'reset', reason: 'UND_ERR_SOCKET', status: 502 }])
    t.equal(await upstreamErrors(s.gw, 'reset'), 3)
  })

  for (const path of ['/cut', '/cut-chunked']) {
    t.test(`during its answer (${path === '/cut' ? 'Content-Length' : 'chunked'}): the client's answer ends cut short, never hangs`, async (t) => {
      const before = await upstreamErrors(s.gw, 'truncated') ?? 0
      const res = await within(request(s.gw.url + path, { headers: { cookie: s.cookie } }), BOUND_MS, 'headers')
      t.equal(res.statusCode, 200, 'the answer had begun')
      let received = 0
      const outcome = await within(new Promise<string>((resolve) => {
        res.body.on('data', (chunk: Buffer) => { received += chunk.length })
        res.body.once('end', () => { resolve('complete') })
        res.body.once('error', () => { resolve('aborted') })
      }), BOUND_MS, 'the body ended one way or the other')
      t.equal(outcome, 'aborted', 'the client sees an aborted body, not a complete one')
      t.ok(received < 64 * 1024, `fewer bytes than announced arrived (${received})`)
      t.ok(await eventually(() => warnings(s.lines).some((l) => l.path === path), BOUND_MS), 'logged')
      const [line, ...more] = warnings(s.lines).filter((l) => l.path === path)
      t.same(more, [])
      t.match(line, { msg: 'upstream closed the connection during its answer: response cut short', kind: 'truncated', reason: 'UND_ERR_SOCKET', status: 200, method: 'GET' })
      t.same(s.lines().filter((l) => l.path === path && /connection closed before the answer/.test(String(l.msg))), [], 'not mistaken for a client that left')
      t.equal(await upstreamErrors(s.gw, 'truncated'), before + 1)
      t.equal((await api(s, '/ok')).status, 200, 'the next request is fine')
    })
  }

  t.test('no stack traces', async (t) => { noStackTraces(t, s.lines) })
})

t.test('upstream hanging before its headers: 504 after UPSTREAM_HEADER_TIMEOUT; bodies are never timed', async (t) => {
  const s = await setup(t, { UPSTREAM_HEADER_TIMEOUT: '1' })
  t.equal(s.gw.config.upstreamHeaderTimeoutMs, 1000)
  /** Returns once more than the header timeout has passed since it was called: a request hanging at the upstream got its 504. */
  const headerTimeoutPassed = async (): Promise<void> => {
    const res = await api(s, '/hang')
    if (res.status !== 504) throw new Error(`a hanging request was answered ${res.status}`)
  }

  t.test('a hang: 504 page or JSON, logged, counted, and its connection freed', async (t) => {
    const closedBefore = s.upstream.closedUnanswered('/hang')
    const json = await api(s, '/hang')
    t.equal(json.status, 504)
    t.same(JSON.parse(json.body), { error: 'upstream_timeout' })
    const html = await page(s, '/hang')
    t.equal(html.status, 504)
    t.match(html.body, /The application is taking too long/)
    t.match(linesOf(s.lines, json).filter((l) => (l.level as number) >= 40), [{ msg: 'upstream request failed', kind: 'timeout', reason: 'UND_ERR_HEADERS_TIMEOUT', status: 504 }])
    t.ok(await eventually(() => s.upstream.closedUnanswered('/hang') === closedBefore + 2, BOUND_MS), 'the upstream saw both requests closed: their pool connections are free')
    t.equal(s.upstream.held('/hang'), 0)
    t.ok((await upstreamErrors(s.gw, 'timeout'))! >= 2)
  })

  t.test('a long-poll whose headers come at once and whose body comes after more than the header timeout', async (t) => {
    // The gateway passes the headers on with the first bytes of the body: the client waits for both.
    const answer = within(request(s.gw.url + '/long-poll', { headers: { cookie: s.cookie } }), BOUND_MS * 2, 'the long-poll answered')
    t.ok(await eventually(() => s.upstream.held('/long-poll') === 1, BOUND_MS), 'the upstream sent its headers and holds the body')
    await headerTimeoutPassed()
    t.equal(s.upstream.held('/long-poll'), 1, 'still waiting at the upstream, not cut')
    s.upstream.release('/long-poll')
    const res = await answer
    t.equal(res.statusCode, 200)
    t.equal(await within(res.body.text(), BOUND_MS, 'body'), '{"event":"ready"}', 'the whole answer arrived')
  })

  t.test('server-sent events with pauses longer than the header timeout', async (t) => {
    const res = await within(request(s.gw.url + '/events', { headers: { cookie: s.cookie, accept: 'text/event-stream' } }), BOUND_MS, 'headers')
    t.equal(res.statusCode, 200)
    let text = ''
    let waiting: (() => void) | undefined
    res.body.setEncoding('utf8')
    res.body.on('data', (chunk: string) => { text += chunk; waiting?.() })
    const ended = new Promise<string>((resolve) => { res.body.once('end', () => { resolve('end') }); res.body.once('error', () => { resolve('error') }) })
    const eventsSoFar = async (n: number): Promise<void> => {
      await within(new Promise<void>((resolve) => {
        const check = (): void => { if (text.split('\n\n').length - 1 >= n) resolve() }
        waiting = check
        check()
      }), BOUND_MS, `${n} events`)
    }
    await eventsSoFar(1)
    for (let n = 2; n <= 3; n++) {
      await headerTimeoutPassed()
      s.upstream.release('/events')
      await eventsSoFar(n)
    }
    t.equal(await within(ended, BOUND_MS, 'the stream ended'), 'end', 'ended by the upstream, normally')
    t.equal(text, 'data: 0\n\ndata: 1\n\ndata: 2\n\n', 'every event, in order')
  })

  t.test('an upload slower than the header timeout: the wait for the headers starts once the body is sent', async (t) => {
    const first = Buffer.alloc(16 * 1024, 0x62)
    const second = Buffer.alloc(16 * 1024, 0x63)
    const body = new Readable({ read () {} })
    body.push(first)
    const sent = within(request(s.gw.url + '/upload', { method: 'POST', headers: { cookie: s.cookie, 'content-type': 'application/octet-stream', 'content-length': String(first.length + second.length) }, body }), BOUND_MS * 2, 'upload answered')
    await headerTimeoutPassed()
    body.push(second)
    body.push(null)
    const res = await sent
    t.equal(res.statusCode, 200)
    t.same(await res.body.json(), { length: first.length + second.length, sha256: createHash('sha256').update(first).update(second).digest('hex') }, 'every byte arrived, and the upstream answered')
  })

  t.test('no stack traces', async (t) => { noStackTraces(t, s.lines) })
})

t.test('one request hanging at the upstream holds up no other', async (t) => {
  // The default header timeout (60 s): the hanging requests are released by hand, nothing is timed.
  const s = await setup(t)
  t.equal(s.gw.config.upstreamHeaderTimeoutMs, 60_000, 'UPSTREAM_HEADER_TIMEOUT defaults to 60 s')
  const hanging = [api(s, '/hang'), api(s, '/hang'), api(s, '/hang')]
  t.ok(await eventually(() => s.upstream.held('/hang') === 3, BOUND_MS), 'three requests wait at the upstream')
  for (const path of ['/ok', '/other/page', '/ok?again']) t.equal((await api(s, path)).status, 200, `${path} is answered meanwhile`)
  t.equal((await page(s, '/dashboard')).status, 200)
  t.equal(s.upstream.held('/hang'), 3, 'while the others still wait')
  for (let i = 0; i < 3; i++) s.upstream.release('/hang')
  t.same((await Promise.all(hanging)).map((r) => r.status), [200, 200, 200], 'and they are answered when the upstream answers')
})

t.test('hung requests filling the whole pool: later requests wait in a queue that is counted and logged, and go on as connections free', async (t) => {
  const upstream = await startFaultUpstream()
  const log = logCapture('info')
  // Two connections; one client address may hold one of them (X-Forwarded-For tells addresses apart).
  const gw = await startGateway({ UPSTREAM_POOL_SIZE: '2', CLIENT_MAX_CONCURRENT_REQUESTS: '1', TRUST_PROXY: '127.0.0.1', SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url, logger: log.logger })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const from = (address: string, path: string): Promise<Response> =>
    within(http(`${gw.url}/public${path}`, { headers: { 'x-forwarded-for': address } }), BOUND_MS * 2, `${path} from ${address}`)
  const metric = async (name: string): Promise<number | undefined> => (await scrape(gw.url + '/_authgate/metrics')).value(name)

  const hangA = from('198.51.100.1', '/hang')
  t.ok(await eventually(() => upstream.hits('/hang') === 1, BOUND_MS))
  t.equal((await from('198.51.100.1', '/ok')).status, 429, 'one address cannot take a second connection')
  const hangB = from('198.51.100.2', '/hang')
  t.ok(await eventually(() => upstream.hits('/hang') === 2, BOUND_MS), 'a second address takes the other one: the pool is full')
  t.equal(await metric('authgate_upstream_requests_active'), 2)
  const queued = from('198.51.100.3', '/ok')
  t.ok(await until(async () => await metric('authgate_upstream_requests_queued') === 1, BOUND_MS), 'a third address waits in the queue, counted')
  t.ok(await eventually(() => log.lines().some((l) => l.msg === 'upstream connection pool full: requests wait for a free connection (see authgate_upstream_requests_queued)'), BOUND_MS), 'and logged')
  t.match(log.lines().find((l) => /pool full/.test(String(l.msg))), { level: 40, connections: 2, queued: 1 })
  t.equal(upstream.hits('/ok'), 0, 'it has not reached the upstream yet')

  upstream.release('/hang')
  t.equal((await queued).status, 200, 'a connection freed: the waiting request goes through')
  t.equal((await hangA).status, 200)
  upstream.release('/hang')
  t.equal((await hangB).status, 200)
  t.equal(await metric('authgate_upstream_requests_queued'), 0)
})

t.test('an overloaded upstream\'s 503 passes through once, with its Retry-After, never retried', async (t) => {
  const s = await setup(t)
  const res = await api(s, '/busy')
  t.equal(res.status, 503)
  t.equal(res.headers['retry-after'], '120', 'the upstream\'s Retry-After reaches the client')
  t.equal(res.body, 'busy', 'the upstream\'s own answer')
  t.equal(s.upstream.hits('/busy'), 1, 'the upstream saw exactly one request')
  const html = await page(s, '/busy')
  t.equal(html.status, 503)
  t.equal(html.body, 'busy', 'browsers too get the application\'s answer, not a gateway page')
  t.equal(s.upstream.hits('/busy'), 2)
  t.equal((await api(s, '/busy-bare')).status, 503)
  t.equal(s.upstream.hits('/busy-bare'), 1, 'without Retry-After too')
  t.same(warnings(s.lines), [], 'the application\'s answer, not a gateway failure: nothing logged beyond the access lines')
  t.equal(await upstreamErrors(s.gw, 'unreachable'), 0)
})
