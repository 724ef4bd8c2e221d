// A client that hangs up must not leave anything behind on the gateway: its upstream request is
// cancelled and its pool connection freed, whether the answer was still on its way (a long-poll
// waiting for its headers), streaming (server-sent events) or the client was still uploading; its
// per-address share of the pool is released too. Otherwise one anonymous client on a SKIP_AUTH_PATHS
// prefix could open and abandon requests until every pool connection is held. And the gateway's own
// close() (the SIGTERM handler's) finishes while streams, long-polls, WebSockets and keep-alive
// connections are open. Real gateway, a real upstream that streams forever and answers long-polls never.
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { answeredWithin, eventually as eventuallyWithin } from '../support/within.js'
import { logCapture } from '../support/log-capture.js'

/** Generous bound for anything that should follow a hang-up "at once". */
const BOUND_MS = 5000
const eventually = async (condition: () => boolean): Promise<boolean> => await eventuallyWithin(condition, BOUND_MS)

interface HangupUpstream {
  url: string
  /** Requests whose response the upstream has not seen closed yet, by path. */
  open: (path: string) => number
  /** TCP connections the gateway holds open to the upstream. */
  connections: () => number
  close: () => Promise<void>
}

/**
 * …/events: an event every 100 ms, forever. /static/hold: never answers (a long-poll).
 * /static/upload: reads the body, answers at its end. /static/slow: answers after 2 s. Else: who asked.
 * An upgrade anywhere: a WebSocket that stays open.
 */
async function startHangupUpstream (): Promise<HangupUpstream> {
  const open = new Map<string, number>()
  let connections = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0]!
    open.set(path, (open.get(path) ?? 0) + 1)
    res.once('close', () => { open.set(path, (open.get(path) ?? 1) - 1) })
    req.resume()
    if (path.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
      let i = 0
      const timer = setInterval(() => { res.write(`data: ${i++}\n\n`) }, 100)
      res.once('close', () => { clearInterval(timer) })
      return
    }
    if (path === '/static/hold') return
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ path, user: req.headers['x-user'] ?? null }))
    }
    if (path === '/static/slow') { setTimeout(answer, 2000); return }
    req.once('end', answer)
  })
  // WebSockets anywhere: open until either side closes them.
  const sockets = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    sockets.handleUpgrade(req, socket, head, (ws) => {
      const path = (req.url ?? '/').split('?', 1)[0]!
      open.set(path, (open.get(path) ?? 0) + 1)
      ws.once('close', () => { open.set(path, (open.get(path) ?? 1) - 1) })
    })
  })
  // Keeps idle connections longer than undici's own keep-alive (30 s): only the gateway ends them.
  server.keepAliveTimeout = 120_000
  server.on('connection', (socket) => { connections++; socket.once('close', () => { connections-- }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: (path) => open.get(path) ?? 0,
    connections: () => connections,
    close: async () => {
      for (const ws of sockets.clients) ws.terminate()
      await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
    }
  }
}

interface RawClient {
  socket: Socket
  received: () => string
  closed: Promise<void>
}

/** A client on its own TCP connection from `localAddress` that writes `head` and reads what comes. */
async function rawClient (gw: TestGateway, localAddress: string, head: string): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(gw.url).port), localAddress })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let raw = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { raw += chunk })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => { socket.once('close', () => { resolve() }) })
  socket.write(head)
  return { socket, received: () => raw, closed }
}

const get = (path: string, extra: string[] = []): string => [`GET ${path} HTTP/1.1`, 'Host: gw', ...extra, '', ''].join('\r\n')

/** Opens `head` from `address`, waits until the upstream holds it (and `ready` holds), then hangs up. */
async function openAndAbandon (t: Test, gw: TestGateway, upstream: HangupUpstream, address: string, path: string, head: string, ready: (client: RawClient) => boolean = () => true): Promise<boolean> {
  const before = upstream.open(path)
  const client = await rawClient(gw, address, head)
  const reached = await eventually(() => upstream.open(path) > before && ready(client))
  if (!reached) {
    t.fail(`${path} did not reach the upstream (the gateway answered: ${JSON.stringify(client.received().split('\r\n', 1)[0])})`)
    client.socket.destroy()
    return false
  }
  client.socket.destroy()
  return await eventually(() => upstream.open(path) === before)
}

t.test('a client that hangs up cancels its upstream request', async (t) => {
  const upstream = await startHangupUpstream()
  const log = logCapture()
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/' }, { upstream: upstream.url, logger: log.logger })
  // The upstream first: requests it still holds would keep the gateway's close() waiting.
  t.teardown(async () => { await upstream.close(); await gw.close() })

  t.ok(await openAndAbandon(t, gw, upstream, '127.0.0.2', '/static/hold', get('/static/hold')),
    'a long-poll still waiting for its headers: the upstream sees its request closed')
  t.ok(await openAndAbandon(t, gw, upstream, '127.0.0.2', '/static/events', get('/static/events', ['Accept: text/event-stream']), (c) => c.received().includes('data: ')),
    'a server-sent event stream: the upstream sees its response closed')
  const upload = ['POST /static/upload HTTP/1.1', 'Host: gw', 'Content-Type: application/octet-stream', 'Content-Length: 1000000', '', ''].join('\r\n') + 'x'.repeat(1000)
  t.ok(await openAndAbandon(t, gw, upstream, '127.0.0.2', '/static/upload', upload),
    'an upload half sent: the upstream sees its request closed')

  const answer = await answeredWithin(http(`${gw.url}/static/after`), BOUND_MS)
  t.equal(answer?.status, 200, 'the same gateway still answers')
  // A WebSocket's handshake is never answered with an HTTP response: its end is no cancellation.
  const ws = new WebSocket(`${gw.url.replace('http:', 'ws:')}/static/socket`)
  await once(ws, 'open')
  ws.close()
  await once(ws, 'close')
  t.ok(await eventually(() => upstream.open('/static/socket') === 0), 'a WebSocket opened and closed')
  t.same(log.lines().filter((l) => (l.level as number) >= 40).map((l) => l.msg), [], 'a client hanging up is no warning or error')
  const cancelled = log.lines().filter((l) => /upstream request cancelled/.test(String(l.msg)))
  t.same(cancelled.map((l) => [l.level, l.path]), [[30, '/static/hold'], [30, '/static/events'], [30, '/static/upload']], 'but one info line each')
})

t.test('abandoned requests cannot exhaust the upstream pool', async (t) => {
  const upstream = await startHangupUpstream()
  const POOL = 4
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', UPSTREAM_POOL_SIZE: String(POOL), CLIENT_MAX_CONCURRENT_REQUESTS: '2' }, { upstream: upstream.url })
  t.teardown(async () => { await upstream.close(); await gw.close() })
  const session = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  // More open-and-abandon cycles than the pool has connections, all from one anonymous address: a
  // cycle whose request is refused (429: its address's slots were not released) fails here too.
  let cancelled = 0
  for (let i = 0; i < POOL + 3; i++) {
    if (await openAndAbandon(t, gw, upstream, '127.0.0.3', '/static/hold', get('/static/hold'))) cancelled++
  }
  t.equal(cancelled, POOL + 3, 'every abandoned long-poll was cancelled upstream')
  const answer = await answeredWithin(http(`${gw.url}/whoami`, { headers: { cookie: session } }), BOUND_MS)
  t.equal(answer?.status, 200, 'a signed-in user still gets an answer')
  t.equal(answer !== undefined ? JSON.parse(answer.body).user : undefined, 'alice', 'as alice')
  const again = await rawClient(gw, '127.0.0.3', get('/static/again', ['Connection: close']))
  await answeredWithin(again.closed, BOUND_MS)
  t.match(again.received(), /^HTTP\/1\.1 200 /, 'and so does the abandoning address: its slots were released')
})

t.test('close() ends open streams, long-polls, WebSockets and keep-alive connections', async (t) => {
  const upstream = await startHangupUpstream()
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/' }, { upstream: upstream.url })
  let closing: Promise<void> | undefined
  // If close() did not complete: nothing left open on either side lets it.
  t.teardown(async () => { for (const c of clients) c.socket.destroy(); await upstream.close(); await (closing ?? gw.close()) })
  const clients: RawClient[] = []
  const session = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  const stream = await rawClient(gw, '127.0.0.4', get('/events', [`Cookie: ${session}`]))
  const events = await rawClient(gw, '127.0.0.4', get('/static/events'))
  const poll = await rawClient(gw, '127.0.0.4', get('/static/hold'))
  // Answered after close() began, on a keep-alive connection.
  const slow = await rawClient(gw, '127.0.0.4', get('/static/slow'))
  // Idle, after a request answered.
  const idle = await rawClient(gw, '127.0.0.4', get('/static/done'))
  // A WebSocket client that stops reading: it never answers the gateway's close frame.
  const socket = await rawClient(gw, '127.0.0.4', get('/static/socket', ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']))
  clients.push(stream, events, poll, slow, idle, socket)
  t.ok(await eventually(() => upstream.open('/events') === 1 && upstream.open('/static/events') === 1 && upstream.open('/static/hold') === 1 && upstream.open('/static/slow') === 1 &&
    stream.received().includes('data: ') && events.received().includes('data: ') && idle.received().includes('\r\n\r\n') &&
    upstream.open('/static/socket') === 1 && socket.received().startsWith('HTTP/1.1 101 ')), 'everything is open')
  socket.socket.pause()

  // Before main.ts's SIGTERM handler gives up (10 s) and exits without closing the database.
  const started = Date.now()
  closing = gw.close()
  t.ok(await answeredWithin(closing.then(() => true), 9000), `close() completed (${Date.now() - started} ms)`)
  t.match(slow.received(), /^HTTP\/1\.1 200 /, 'the request in progress got its answer')
  // Reading again, the deaf client sees its connection closed too.
  socket.socket.resume()
  t.ok(await eventually(() => upstream.open('/events') === 0 && upstream.open('/static/events') === 0 && upstream.open('/static/hold') === 0 && upstream.open('/static/socket') === 0),
    'the upstream saw the streams, the long-poll and the WebSocket closed')
  t.ok(await answeredWithin(Promise.all(clients.map(async (c) => await c.closed)).then(() => true), BOUND_MS), 'every client connection was closed')
  t.ok(await eventually(() => upstream.connections() === 0), `the gateway left no connection to the upstream open (${upstream.connections()})`)
})
