// X-Request-Id: believed only from a TRUST_PROXY peer, otherwise a fresh one; the same id in the
// gateway's log, at the upstream (HTTP and WebSocket) and in the answer. Real gateway, real upstreams,
// clients on different loopback addresses.
import t from 'tap'
import { once } from 'node:events'
import { Agent, request } from 'undici'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, loginLocal } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const upstream = await startUpstream()
t.teardown(() => upstream.close())

/** A client connecting from this loopback address. */
function from (address: string): Agent {
  const agent = new Agent({ localAddress: address })
  t.teardown(() => agent.close())
  return agent
}

async function get (gw: TestGateway, path: string, client: Agent, headers: Record<string, string> = {}): Promise<{ status: number, id: string | undefined, upstreamId: string | undefined }> {
  const seen = upstream.received.length
  const res = await request(gw.url + path, { dispatcher: client, headers })
  await res.body.dump()
  const reached = upstream.received.slice(seen).at(-1)
  return { status: res.statusCode, id: res.headers['x-request-id'] as string | undefined, upstreamId: reached?.headers['x-request-id'] as string | undefined }
}

t.test('from a trusted proxy: its id is kept, forwarded, returned and logged', async (t) => {
  const capture = logCapture('info')
  const gw = await startGateway({ TRUST_PROXY: '127.0.0.1', SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url, logger: capture.logger })
  t.teardown(() => gw.close())
  const proxy = from('127.0.0.1')

  const kept = await get(gw, '/public/a', proxy, { 'x-request-id': 'edge-0af7651916cd43dd8448eb211c80319c' })
  t.same(kept, { status: 200, id: 'edge-0af7651916cd43dd8448eb211c80319c', upstreamId: 'edge-0af7651916cd43dd8448eb211c80319c' })
  const line = capture.lines().find((l) => l.msg === 'request' && l.path === '/public/a')
  t.equal(line?.reqId, 'edge-0af7651916cd43dd8448eb211c80319c', 'the access line carries it')

  for (const odd of ['has space', 'x'.repeat(129), 'semi;colon', '<script>']) {
    const fresh = await get(gw, '/public/b', proxy, { 'x-request-id': odd })
    t.match(fresh.id, UUID, `not an id: replaced (${odd.slice(0, 12)})`)
    t.equal(fresh.upstreamId, fresh.id)
  }
})

t.test('from anyone else: a fresh id, and the client\'s never reaches the upstream', async (t) => {
  const gw = await startGateway({ TRUST_PROXY: '127.0.0.1', SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url })
  t.teardown(() => gw.close())
  const stranger = from('127.0.0.2')
  const answer = await get(gw, '/public/a', stranger, { 'x-request-id': 'chosen-by-the-client' })
  t.match(answer.id, UUID)
  t.equal(answer.upstreamId, answer.id, 'the upstream gets the gateway\'s id')
  const other = await get(gw, '/public/a', stranger)
  t.match(other.id, UUID)
  t.not(other.id, answer.id, 'one per request')

  const untrusting = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url })
  t.teardown(() => untrusting.close())
  const local = await get(untrusting, '/public/a', from('127.0.0.1'), { 'x-request-id': 'chosen-by-the-client' })
  t.match(local.id, UUID, 'TRUST_PROXY unset: nobody is believed')
  t.equal(local.upstreamId, local.id)
})

t.test('every answer carries it: signed-in proxying, refusals, the gateway\'s pages, upstream errors', async (t) => {
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(() => gw.close())
  const client = from('127.0.0.1')
  const cookie = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
  const proxied = await get(gw, '/app', client, { cookie })
  t.equal(proxied.status, 200)
  t.match(proxied.id, UUID)
  t.equal(proxied.upstreamId, proxied.id)
  for (const [path, status] of [['/app', 401], ['/login', 200], ['/_authgate/healthz', 200], ['/_authgate/nothing', 404]] as const) {
    const answer = await get(gw, path, client)
    t.equal(answer.status, status, path)
    t.match(answer.id, UUID, `${path}: X-Request-Id`)
  }
  const down = await startGateway({}, { upstream: 'http://127.0.0.1:9' })
  t.teardown(() => down.close())
  const failed = await request(down.url + '/app', { dispatcher: client, headers: { cookie: cookieHeader((await loginLocal(down.url, 'alice')).cookies) } })
  await failed.body.dump()
  t.equal(failed.statusCode, 502)
  t.match(failed.headers['x-request-id'], UUID)
})

t.test('the upstream\'s own X-Request-Id does not replace the gateway\'s', async (t) => {
  const { createServer } = await import('node:http')
  const echo = createServer((req, res) => { res.writeHead(200, { 'x-request-id': 'upstream-own' }); res.end(String(req.headers['x-request-id'])) })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { echo.close() })
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: `http://127.0.0.1:${(echo.address() as { port: number }).port}` })
  t.teardown(() => gw.close())
  const res = await request(gw.url + '/public/x')
  const sent = await res.body.text()
  t.equal(res.headers['x-request-id'], sent, 'the client sees the id the upstream was given')
})

t.test('WebSocket handshakes carry it to the upstream', async (t) => {
  const wsUpstream = await startWsUpstream()
  const gw = await startGateway({ TRUST_PROXY: '127.0.0.1' }, { upstream: wsUpstream.url })
  t.teardown(async () => { await gw.close(); await wsUpstream.close() })
  const cookie = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
  /** The x-request-id the upstream's handshake carried (the client's open comes first: wait for an echo). */
  const upstreamSaw = async (headers: Record<string, string>, localAddress?: string): Promise<unknown> => {
    const ws = new WebSocket(gw.url.replace(/^http/, 'ws') + '/socket', { headers: { cookie, ...headers }, ...(localAddress !== undefined ? { localAddress } : {}) })
    await once(ws, 'open')
    const echo = once(ws, 'message')
    ws.send('ping')
    await echo
    ws.close()
    return wsUpstream.handshakes.at(-1)?.headers['x-request-id']
  }
  t.equal(await upstreamSaw({ 'x-request-id': 'edge-ws-1' }), 'edge-ws-1', 'from the trusted proxy')
  t.match(await upstreamSaw({ 'x-request-id': 'edge-ws-2' }, '127.0.0.2'), UUID, 'untrusted peer: a fresh one')
})
