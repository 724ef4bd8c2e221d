// WebSockets through the real gateway to a real ws upstream: authorisation before anything reaches
// the upstream, signed identity on the handshake, one normalised path, and close propagation.
import t from 'tap'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import WebSocket from 'ws'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const upstream = await startWsUpstream()
const gateway = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url })
const wsBase = gateway.url.replace(/^http/, 'ws')
t.teardown(async () => { await gateway.close(); await upstream.close() })

const { cookies } = await loginLocal(gateway.url, 'alice')
const cookie = cookieHeader(cookies)

type Opened = { ws: WebSocket } | { status: number, body: string }

/** Open a WebSocket; an HTTP answer instead of 101 resolves with its status and body. */
async function openWs (path: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<Opened> {
  const ws = new WebSocket(wsBase + path, protocols, { headers })
  return await new Promise<Opened>((resolve, reject) => {
    ws.once('open', () => { resolve({ ws }) })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    ws.once('error', reject)
  })
}

async function opened (path: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<WebSocket> {
  const result = await openWs(path, headers, protocols)
  if (!('ws' in result)) throw new Error(`expected 101, got ${result.status}: ${result.body}`)
  return result.ws
}

async function roundTrip (ws: WebSocket, message: string): Promise<string> {
  const reply = once(ws, 'message')
  ws.send(message)
  const [data] = await reply as [Buffer]
  return data.toString()
}

t.test('an unauthenticated upgrade gets 401 and opens no upstream connection', async (t) => {
  const before = upstream.connections
  const result = await openWs('/socket', { 'x-user': 'admin', 'x-auth-signature': 'v1=' + '0'.repeat(64) })
  t.same('status' in result ? { status: result.status, body: JSON.parse(result.body) } : result, { status: 401, body: { error: 'unauthenticated' } })
  // One round-trip to the gateway afterwards: anything the upgrade had started would be visible now.
  t.equal((await http(`${gateway.url}/_authgate/healthz`)).status, 200)
  t.equal(upstream.connections, before, 'no TCP connection reached the upstream')
  t.equal(upstream.handshakes.length, 0)
})

t.test('a forged or foreign session cookie is refused the same way', async (t) => {
  const before = upstream.connections
  for (const forged of ['authgate=garbage', 'authgate=' + 'A'.repeat(200), `${Object.keys(cookies).find((k) => !k.includes('csrf'))!}=x`]) {
    const result = await openWs('/socket', { cookie: forged })
    t.equal('status' in result ? result.status : 101, 401, forged.slice(0, 20))
  }
  t.equal(upstream.connections, before)
})

t.test('an authenticated upgrade reaches the upstream with verified identity headers', async (t) => {
  const ws = await opened('/socket?room=1', {
    cookie: cookie + '; app=keep',
    origin: 'http://tt.example.com',
    'x-user': 'mallory',
    X_User: 'mallory',
    'x-admin': 'true'
  })
  t.equal(await roundTrip(ws, 'hello'), 'hello', 'text echoed')
  const handshake = upstream.handshakes.at(-1)!
  t.equal(handshake.url, '/socket?room=1')
  const verified = verifyIdentityHeaders(handshake.headers, HEADER_SIGNING_SECRET)
  t.ok(verified.ok, 'X-Auth-Signature verifies')
  if (verified.ok) {
    t.equal(verified.identity.username, 'alice')
    t.equal(verified.identity.isAdmin, false)
  }
  t.equal(handshake.headers['x-user'], 'alice', 'forged X-User replaced')
  t.notOk(Object.keys(handshake.headers).some((h) => h.toLowerCase() === 'x_user'), 'underscore variant removed')
  t.equal(handshake.headers.cookie, 'app=keep', 'gateway cookies removed, the app\'s kept')
  t.equal(handshake.headers.origin, 'http://tt.example.com', 'Origin passed on (Socket.IO checks it)')
  t.equal(handshake.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(handshake.headers['x-forwarded-proto'], 'http')
  t.match(handshake.headers['x-forwarded-host'], /^127\.0\.0\.1:\d+$/)
  t.equal(handshake.headers.upgrade, 'websocket')
  const binary = once(ws, 'message')
  ws.send(Buffer.from([0, 1, 2, 255]))
  const [data, isBinary] = await binary as [Buffer, boolean]
  t.ok(isBinary)
  t.same([...data], [0, 1, 2, 255], 'binary echoed intact')
  ws.close()
  await once(ws, 'close')
})

t.test('upgrades are routed and authorised on the normalised path', async (t) => {
  const ws = await opened('/x/../socket/./y?q=%2F', { cookie })
  t.same(JSON.parse(await roundTrip(ws, 'whoami')), { user: 'alice', url: '/socket/y?q=%2F' })
  ws.close()
  const before = upstream.connections
  // Looks like a skip-auth path before normalisation, is /private after it.
  // "..;" is a dot segment to servers that strip ;params per segment (Tomcat, Jetty), and the
  // WebSocket path has no other check that would catch it (HTTP requests meet reply-from's).
  for (const path of ['/public/../private', '/public/%2e%2e/private', '/public\\..\\private', '/public/..;/private', '/public/..%3b/private']) {
    const result = await openWs(path)
    t.equal('status' in result ? result.status : 101, 401, path)
  }
  t.equal(upstream.connections, before, 'none of them reached the upstream')
})

t.test('a SKIP_AUTH_PATHS upgrade is proxied without identity headers', async (t) => {
  const ws = await opened('/public/feed', { 'x-user': 'mallory', 'x-auth-timestamp': '1', 'x-auth-signature': 'v1=' + 'a'.repeat(64) })
  t.same(JSON.parse(await roundTrip(ws, 'whoami')), { user: null, url: '/public/feed' })
  const handshake = upstream.handshakes.at(-1)!
  t.notOk('x-auth-signature' in handshake.headers)
  t.notOk('x-auth-timestamp' in handshake.headers)
  ws.close()
})

t.test('the first offered subprotocol is negotiated with the upstream', async (t) => {
  const ws = await opened('/socket', { cookie }, ['chat.v2', 'chat.v1'])
  t.equal(ws.protocol, 'chat.v2')
  // The client's 101 comes before the upstream is dialled; a round trip waits for the upstream side.
  await roundTrip(ws, 'sync')
  t.equal(upstream.handshakes.at(-1)!.headers['sec-websocket-protocol'], 'chat.v2')
  ws.close()
})

t.test('a close by the upstream reaches the client with its code and reason', async (t) => {
  const ws = await opened('/socket', { cookie })
  const closed = once(ws, 'close')
  ws.send('close:4001:bye')
  const [code, reason] = await closed as [number, Buffer]
  t.equal(code, 4001)
  t.equal(reason.toString(), 'bye')
})

t.test('a close by the client reaches the upstream with its code and reason', async (t) => {
  const ws = await opened('/socket', { cookie })
  await roundTrip(ws, 'ready')
  const count = upstream.closes.length
  ws.close(4002, 'client done')
  await once(ws, 'close')
  while (upstream.closes.length === count) await new Promise((resolve) => setImmediate(resolve))
  t.same(upstream.closes.at(-1), { code: 4002, reason: 'client done' })
})

t.test('an idle socket stays open and keeps working', async (t) => {
  const ws = await opened('/socket', { cookie })
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(ws.readyState, WebSocket.OPEN)
  t.equal(await roundTrip(ws, 'still here'), 'still here')
  ws.close()
})

t.test('an upstream that refuses the upgrade closes the client socket with 1011', async (t) => {
  const result = await openWs('/refuse', { cookie })
  // The gateway completes the client handshake before dialling the upstream (as @fastify/http-proxy
  // does): the refusal arrives as a close frame, never as an open tunnel.
  t.ok('ws' in result)
  if ('ws' in result) {
    const [code] = await once(result.ws, 'close') as [number]
    t.equal(code, 1011)
  }
})

t.test('a refusal on a kept-alive upstream connection does not leave that connection open', async (t) => {
  const result = await openWs('/refuse-open', { cookie })
  t.ok('ws' in result)
  if ('ws' in result) {
    const [code] = await once(result.ws, 'close') as [number]
    t.equal(code, 1011)
  }
  // Bounded wait for the gateway to drop its half; the upstream never closes it on its own.
  for (let i = 0; i < 200 && upstream.open() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(upstream.open(), 0, 'no upstream connection left open')
})

t.test('an unreachable upstream closes the client socket and the gateway keeps serving', async (t) => {
  const down = await startGateway({}, { upstream: 'http://127.0.0.1:9' })
  t.teardown(down.close)
  const login = await loginLocal(down.url, 'bob')
  const ws = new WebSocket(down.url.replace(/^http/, 'ws') + '/socket', { headers: { cookie: cookieHeader(login.cookies) } })
  ws.on('error', () => {})
  const [code] = await once(ws, 'close') as [number]
  t.ok(code === 1011 || code === 1006, `closed (${code})`)
  t.equal((await http(`${down.url}/_authgate/healthz`)).status, 200)
})

t.test('a non-WebSocket upgrade gets a deliberate 400', async (t) => {
  const { port } = new URL(gateway.url)
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/socket', headers: { cookie, connection: 'upgrade', upgrade: 'h2c' } })
    req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
  t.equal(status, 400)
})

t.test('a malformed handshake never crashes the gateway', async (t) => {
  const { port } = new URL(gateway.url)
  const raw = connect(Number(port), '127.0.0.1')
  raw.write(`GET /socket HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: short\r\n\r\n`)
  let answer = ''
  raw.on('data', (c: Buffer) => { answer += c.toString() })
  await once(raw, 'close')
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.equal((await http(`${gateway.url}/_authgate/healthz`)).status, 200)
})
