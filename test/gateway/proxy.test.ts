// The proxy path end to end: forged identity never reaches the upstream, what is signed verifies,
// bodies stream in both directions, hop-by-hop headers stay on their hop, and a dead upstream is a 502.
import t from 'tap'
import { createHash, createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { verifyIdentityHeaders } from '@authgate/verify'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal, rawRequest } from '../support/http.js'
import { scrape } from '../support/metrics.js'

const upstream = await startUpstream()
t.teardown(upstream.close)
const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/,/api/v1/', ADMIN_USERNAMES: 'alice' }, { upstream: upstream.url })
t.teardown(gw.close)
const { cookies } = await loginLocal(gw.url, 'alice')
const session = cookieHeader(cookies)
const last = (): (typeof upstream.received)[number] => upstream.received.at(-1)!

/** Written from docs/PROTOCOL.md#the-signature alone: what an upstream implementer would write. */
function specVerify (h: Record<string, string | string[] | undefined>): boolean {
  const v = (name: string): string => { const x = h[name]; return typeof x === 'string' ? x : '' }
  const canonical = ['v1', v('x-auth-timestamp'), v('x-user'), v('x-admin'), v('x-email'), v('x-full-name'), v('x-groups')].join('\n')
  const expected = 'v1=' + createHmac('sha256', HEADER_SIGNING_SECRET).update(canonical).digest('hex')
  return expected === v('x-auth-signature') && Math.abs(Date.now() / 1000 - Number(v('x-auth-timestamp'))) <= 60
}

t.test('forged identity headers never reach the upstream, in any spelling', async (t) => {
  const spoof = ['X-User: mallory', 'x_user: mallory', 'X.User: mallory', 'x-USER: mallory', 'X-User: second', 'X-Admin: true', 'x_admin: true',
    'X-Email: m@evil', 'X-Full-Name: Mallory', 'x.full_name: M', 'X-Groups: admins', 'X-Auth-Timestamp: 1', 'X-Auth-Signature: v1=00', 'x_auth_signature: v1=00', 'X-Identity-Assertion: e30.e30.']
  const authenticated = await rawRequest(gw.url, ['GET /whoami HTTP/1.1', 'Host: gw', `Cookie: ${session}`, 'Connection: close', ...spoof].join('\n'))
  t.equal(authenticated.status, 200)
  const seen = last().rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
  t.same(seen.filter((n) => /^x[-_.]/.test(n) && !n.startsWith('x-forwarded')).sort(), ['x-admin', 'x-auth-signature', 'x-auth-timestamp', 'x-email', 'x-full-name', 'x-groups', 'x-request-id', 'x-user'], 'only the gateway\'s own, once each')
  t.equal(last().headers['x-user'], 'alice')
  t.equal(last().headers['x-admin'], 'true')
  t.ok(specVerify(last().headers), 'signature verifies with an independent verifier')
  t.notOk(specVerify({ ...last().headers, 'x-user': 'mallory' }), 'a changed header does not')
  const published = verifyIdentityHeaders(last().headers, HEADER_SIGNING_SECRET)
  t.same(published.ok ? [published.identity.username, published.identity.isAdmin] : published.reason, ['alice', true], 'and with @authgate/verify, the package upstreams install')
  const changed = verifyIdentityHeaders({ ...last().headers, 'x-admin': 'false' }, HEADER_SIGNING_SECRET)
  t.equal(changed.ok ? 'ok' : changed.reason, 'bad-signature')

  const skipped = await rawRequest(gw.url, ['GET /static/app.css HTTP/1.1', 'Host: gw', 'Connection: close', ...spoof].join('\n'))
  t.equal(skipped.status, 200, 'skip-auth path proxied without a session')
  t.same(Object.keys(last().headers).filter((n) => /^x[-_.](user|admin|email|full|groups|auth|identity)/i.test(n)), [], 'and without any identity header')
})

t.test('skip-auth paths carry no identity even with a session', async (t) => {
  const res = await http(`${gw.url}/api/v1/projects`, { headers: { cookie: session } })
  t.equal(res.status, 200)
  t.equal(last().headers['x-user'], undefined)
  t.equal(last().headers['x-auth-signature'], undefined)
})

t.test('access rules on the one normalised path', async (t) => {
  const anon = async (path: string, accept = 'application/json'): Promise<number> => (await rawRequest(gw.url, `GET ${path} HTTP/1.1\nHost: gw\nAccept: ${accept}\nConnection: close`)).status
  t.equal(await anon('/static/../admin'), 401, 'dot segments out of a skip-auth prefix')
  t.equal(await anon('/static/%2e%2e/admin'), 401, 'encoded dot segments')
  t.equal(await anon('/static/..%2fadmin'), 401, 'encoded slash')
  t.equal(await anon('/static\\..\\admin'), 401, 'backslashes')
  t.equal(await anon('/admin?/static/x'), 401, 'query is not the path')
  t.equal(await anon('http://gw/static/x'), 400, 'absolute-form target refused')
  const redirect = await rawRequest(gw.url, 'GET /reports?week=2 HTTP/1.1\nHost: gw\nAccept: text/html\nConnection: close')
  t.equal(redirect.status, 302)
  t.match(redirect.raw, /location: \/login\?next=%2Freports%3Fweek%3D2/i)
  const post = await http(`${gw.url}/reports`, { method: 'POST', headers: { accept: 'text/html' }, body: 'x' })
  t.equal(post.status, 401, 'a POST is never redirected')
  t.same(JSON.parse(post.body), { error: 'unauthenticated' })
  const before = upstream.received.length
  await anon('/private')
  t.equal(upstream.received.length, before, 'refused requests never reach the upstream')

  await rawRequest(gw.url, `GET /a/./b/../c?x=1 HTTP/1.1\nHost: gw\nCookie: ${session}\nConnection: close`)
  t.equal(last().url, '/a/c?x=1', 'the upstream receives the normalised path that was checked')
})

t.test('cookies, forwarding and hop-by-hop headers', async (t) => {
  await rawRequest(gw.url, ['GET /h HTTP/1.1', 'Host: gw.example', `Cookie: ${session}; app=1`, 'Connection: close, X-Private-Hop', 'X-Private-Hop: 1', 'Keep-Alive: timeout=1', 'TE: trailers', 'Proxy-Authorization: Basic eDp5', 'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Proto: https', 'Forwarded: for=6.6.6.6'].join('\n'))
  const h = last().headers
  t.equal(h.cookie, 'app=1', 'gateway cookies removed, others kept')
  t.equal(h['x-private-hop'], undefined, 'headers named in Connection dropped')
  t.equal(h['keep-alive'], undefined)
  t.equal(h['proxy-authorization'], undefined)
  t.equal(h.te, undefined)
  t.equal(h.forwarded, undefined)
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'client X-Forwarded-For not trusted (TRUST_PROXY=false)')
  t.equal(h['x-forwarded-host'], 'gw.example')
  t.equal(h['x-forwarded-proto'], 'http')

  const res = await rawRequest(gw.url, `GET /stream HTTP/1.1\nHost: gw\nCookie: ${session}\nConnection: close`)
  t.notMatch(res.raw, /keep-alive: timeout=5/i, 'upstream hop-by-hop response headers not copied')
  t.match(res.raw, /x-upstream: stream/i)

  const cookieRes = await http(`${gw.url}/set-cookie`, { headers: { cookie: session } })
  t.same(cookieRes.headers['set-cookie'], 'app=1; Path=/', 'the upstream cannot set the gateway cookies')

  // curl sends Expect: 100-continue with larger uploads; the gateway's server has already answered it.
  for (const path of ['/upload', '/static/upload']) {
    const expect = await rawRequest(gw.url, `POST ${path} HTTP/1.1\nHost: gw\nCookie: ${session}\nContent-Type: application/octet-stream\nContent-Length: 5\nExpect: 100-continue\nConnection: close\n\nhello`)
    t.match(expect.raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, `Expect: 100-continue to ${path}: continued, then proxied`)
    t.equal(last().body, 'hello')
    t.equal(last().headers.expect, undefined, 'and not asked again of the upstream')
  }
})

t.test('TRUST_PROXY extends X-Forwarded-For only for trusted peers', async (t) => {
  const trusted = await startGateway({ TRUST_PROXY: '127.0.0.1' }, { upstream: upstream.url })
  t.teardown(trusted.close)
  const c = cookieHeader((await loginLocal(trusted.url, 'bob')).cookies)
  await rawRequest(trusted.url, `GET /x HTTP/1.1\nHost: gw\nCookie: ${c}\nX-Forwarded-For: 203.0.113.9\nX-Forwarded-Proto: https\nX-Forwarded-Host: tt.example.com\nConnection: close`)
  t.equal(last().headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
  t.equal(last().headers['x-forwarded-proto'], 'https')
  t.equal(last().headers['x-forwarded-host'], 'tt.example.com')
})

t.test('TRUST_PROXY: a client that reaches the gateway directly cannot pick its own address', async (t) => {
  // The operator's proxy is elsewhere; this client connects straight from 127.0.0.1 and forges the chain.
  const elsewhere = await startGateway({ TRUST_PROXY: '192.0.2.10,10.0.0.0/8' }, { upstream: upstream.url })
  t.teardown(elsewhere.close)
  const c = cookieHeader((await loginLocal(elsewhere.url, 'carol')).cookies)
  await rawRequest(elsewhere.url, `GET /x HTTP/1.1\nHost: gw\nCookie: ${c}\nX-Forwarded-For: 203.0.113.9, 192.0.2.10\nConnection: close`)
  t.equal(last().headers['x-forwarded-for'], '127.0.0.1', 'the forged hops are not believed: the peer is not a listed proxy')

  // A hop count (what Fastify before 5.12.1 honoured) would have believed 203.0.113.9: it is refused.
  for (const hops of ['1', '2']) {
    let started: Awaited<ReturnType<typeof startGateway>> | undefined
    try {
      started = await startGateway({ TRUST_PROXY: hops }, { upstream: upstream.url })
    } catch (err) {
      t.match((err as Error).message, /TRUST_PROXY: .*hop count/, `TRUST_PROXY=${hops}: a startup error`)
    }
    if (started !== undefined) {
      await started.close()
      t.fail(`TRUST_PROXY=${hops} started`)
    }
  }
})

t.test('request and response bodies are carried intact and streamed', async (t) => {
  const body = JSON.stringify({ hello: 'wörld', n: [1, 2, 3] })
  const res = await http(`${gw.url}/submit?x=1`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json' }, body })
  t.equal(res.status, 200)
  t.equal(last().body, body)
  t.equal(last().method, 'POST')

  const streamed = await request(`${gw.url}/stream`, { headers: { cookie: session } })
  const chunks: string[] = []
  for await (const chunk of streamed.body) chunks.push(String(chunk))
  t.ok(chunks.length > 1, `response arrived in ${chunks.length} chunks, not buffered into one`)
  t.equal(chunks.join(''), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\ndone\n')

  const big = await request(`${gw.url}/big`, { headers: { cookie: session } })
  let size = 0
  for await (const chunk of big.body) size += (chunk as Buffer).length
  t.equal(size, 20 * 1024 * 1024, '20 MB download intact')
})

t.test('bodies of every type reach the upstream byte for byte, whatever the gateway itself parses', async (t) => {
  // The gateway parses forms for /login; the application's own forms must not be parsed (and
  // re-encoded, or refused) on the way through.
  const cases: Array<[string, string]> = [
    ['application/x-www-form-urlencoded', 'title=Caf%C3%A9+%26+co&tags=a&tags=b&empty='],
    ['text/plain; charset=utf-8', 'plain wörds ' + 'x'.repeat(100 * 1024)],
    ['application/json; charset=utf-8', '{"a": 1,   "b": [true]}'],
    ['multipart/form-data; boundary=XyZ', '--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--XyZ--\r\n'],
    ['application/x-www-form-urlencoded', 'a=' + 'y'.repeat(100 * 1024)]
  ]
  for (const [type, body] of cases) {
    for (const path of ['/entries/new', '/static/form']) {
      const res = await http(`${gw.url}${path}`, { method: 'POST', headers: { cookie: session, 'content-type': type }, body })
      t.equal(res.status, 200, `${type} (${body.length} bytes) to ${path}`)
      t.equal(last().bodySha256, createHash('sha256').update(body).digest('hex'), 'same bytes')
      t.equal(last().bodyLength, Buffer.byteLength(body), 'same length')
      t.equal(last().headers['content-type'], type, 'same content type')
    }
  }
})

t.test('a 200 MB upload streams through without growing memory by 200 MB', async (t) => {
  const block = Buffer.alloc(256 * 1024, 0x62)
  async function upload (total: number): Promise<{ bodyLength: number, bodySha256: string }> {
    async function * source (): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < total; sent += block.length) yield block
    }
    const res = await request(`${gw.url}/upload`, { method: 'PUT', headers: { cookie: session, 'content-type': 'application/octet-stream' }, body: Readable.from(source()) })
    return await res.body.json() as { bodyLength: number, bodySha256: string }
  }
  // A first 100 MB, not measured: a fast stream's buffers stay garbage until V8 collects them, up to
  // ~60 MB at once on Node 20 and ~100 MB on Node 24, and the resident set keeps the pages it grew
  // by. Measured from there, a body that streams costs a few MB; one held anywhere costs its size.
  await upload(100 * 1024 * 1024)
  const total = 200 * 1024 * 1024
  global.gc?.()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 5)
  const answer = await upload(total)
  clearInterval(sampler)
  const { createHash } = await import('node:crypto')
  const hash = createHash('sha256')
  for (let sent = 0; sent < total; sent += block.length) hash.update(block)
  t.equal(answer.bodyLength, total, 'every byte arrived')
  t.equal(answer.bodySha256, hash.digest('hex'), 'intact')
  const growthMb = (peak - baseline) / 1024 / 1024
  t.comment(`peak RSS growth during a 200 MB upload (client, gateway and upstream in one process): ${growthMb.toFixed(1)} MB`)
  t.ok(growthMb < 60, `memory grew by ${growthMb.toFixed(1)} MB, far less than the 200 MB body`)
})

t.test('upstream down: 502 page or JSON, and the gateway keeps serving', async (t) => {
  const flaky = await startUpstream()
  const port = flaky.port
  const g = await startGateway({}, { upstream: flaky.url })
  t.teardown(g.close)
  const c = cookieHeader((await loginLocal(g.url, 'carol')).cookies)
  t.equal((await http(`${g.url}/x`, { headers: { cookie: c } })).status, 200)
  await flaky.close()
  const page = await http(`${g.url}/x`, { headers: { cookie: c, accept: 'text/html' } })
  t.equal(page.status, 502)
  t.match(page.body, /not reachable/)
  t.notMatch(page.body, /ECONNREFUSED|at .*\.js/, 'no internals shown')
  const api = await http(`${g.url}/x`, { headers: { cookie: c, accept: 'application/json' } })
  t.equal(api.status, 502)
  t.same(JSON.parse(api.body), { error: 'bad_gateway' })
  t.equal((await http(`${g.url}/_authgate/healthz`)).status, 200, 'the gateway itself is fine')
  const back = await startUpstream(port)
  t.teardown(back.close)
  let status = 0
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = (await http(`${g.url}/x`, { headers: { cookie: c } })).status
    if (status !== 200) await sleep(50)
  }
  t.equal(status, 200, 'recovers when the upstream is back')
  t.equal((await scrape(g.url + '/_authgate/metrics')).value('authgate_upstream_errors_total', { kind: 'unreachable' }), 2)
})
