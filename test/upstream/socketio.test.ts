// Socket.IO (what TimeTracker uses) through the real gateway: a real socket.io server that, like an
// application should, verifies the gateway's signature on every handshake request, and a real
// socket.io-client over long-polling, WebSocket, and polling upgraded to WebSocket.
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server as SocketIOServer } from 'socket.io'
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { cookieHeader, loginLocal } from '../support/http.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const httpServer = createServer()
const requests: Array<{ method: string, url: string, user: string | undefined }> = []
const io = new SocketIOServer(httpServer, {
  // Every engine.io request (each poll, the upgrade) must carry a valid signature.
  allowRequest: (req, callback) => {
    const verified = verifyIdentityHeaders(req.headers, HEADER_SIGNING_SECRET)
    callback(verified.ok ? null : 'unauthenticated', verified.ok)
  },
  pingInterval: 2000,
  pingTimeout: 5000
})
// After the Server is attached (engine.io re-wraps the listeners present at attach time).
httpServer.prependListener('request', (req) => { requests.push({ method: req.method ?? '', url: req.url ?? '', user: req.headers['x-user'] as string | undefined }) })
const serverDisconnects: string[] = []
io.on('connection', (socket) => {
  const verified = verifyIdentityHeaders(socket.handshake.headers, HEADER_SIGNING_SECRET)
  const user = verified.ok ? verified.identity.username : 'nobody'
  socket.on('whoami', (ack: (u: string) => void) => { ack(user) })
  // Pushed while the client waits in a long-poll (or on the socket): must arrive without a new request.
  socket.on('later', (ms: number) => { setTimeout(() => socket.emit('pushed', user), ms) })
  socket.on('kick', () => { socket.disconnect(true) })
  socket.on('disconnect', (reason) => { serverDisconnects.push(reason) })
})
await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`

const gateway = await startGateway({}, { upstream: upstreamUrl })
t.teardown(async () => {
  await gateway.close()
  await io.close()
})
const cookie = cookieHeader((await loginLocal(gateway.url, 'tina')).cookies)

function client (transports: Array<'polling' | 'websocket'>, headers: Record<string, string> = { cookie }): ClientSocket {
  return connectClient(gateway.url, { transports, extraHeaders: headers, reconnection: false, forceNew: true, timeout: 5000 })
}

/** socket.io-client's emitters are not Node EventEmitters: the first `event`, with its arguments. */
async function once (emitter: { once: (event: string, listener: (...args: any[]) => void) => unknown }, event: string): Promise<unknown[]> {
  return await new Promise((resolve) => { emitter.once(event, (...args: unknown[]) => { resolve(args) }) })
}

async function connected (socket: ClientSocket): Promise<void> {
  await Promise.race([
    once(socket, 'connect'),
    once(socket, 'connect_error').then(([err]) => { throw err })
  ])
}

const whoami = async (socket: ClientSocket): Promise<string> => await socket.emitWithAck('whoami') as string

t.test('long-polling only: connect, acks, and a push delivered to a waiting poll', async (t) => {
  const socket = client(['polling'])
  t.teardown(() => { socket.disconnect() })
  await connected(socket)
  t.equal(socket.io.engine.transport.name, 'polling')
  t.equal(await whoami(socket), 'tina')
  const pushed = once(socket, 'pushed')
  socket.emit('later', 1500)
  t.same(await pushed, ['tina'], 'the server push arrived through the held poll')
  const polls = requests.filter((r) => r.url.startsWith('/socket.io/') && r.url.includes('transport=polling'))
  t.ok(polls.some((r) => r.method === 'GET') && polls.some((r) => r.method === 'POST'), 'GET and POST polls reached the app')
  t.ok(polls.every((r) => r.user === 'tina'), 'every poll carried the identity')
})

t.test('WebSocket only', async (t) => {
  const socket = client(['websocket'])
  t.teardown(() => { socket.disconnect() })
  await connected(socket)
  t.equal(socket.io.engine.transport.name, 'websocket')
  t.equal(await whoami(socket), 'tina')
  const pushed = once(socket, 'pushed')
  socket.emit('later', 10)
  t.same(await pushed, ['tina'])
})

t.test('polling upgraded to WebSocket (the default, as in browsers)', async (t) => {
  const socket = client(['polling', 'websocket'])
  t.teardown(() => { socket.disconnect() })
  await connected(socket)
  if (socket.io.engine.transport.name !== 'websocket') await new Promise((resolve) => { socket.io.engine.once('upgrade', resolve) })
  t.equal(socket.io.engine.transport.name, 'websocket')
  t.equal(await whoami(socket), 'tina')
})

t.test('without a session nothing reaches the app, on either transport', async (t) => {
  const before = requests.length
  for (const transports of [['polling'], ['websocket']] as Array<Array<'polling' | 'websocket'>>) {
    const socket = client(transports, { 'x-user': 'tina' })
    const [err] = await once(socket, 'connect_error') as [Error]
    t.ok(err instanceof Error, `${transports[0]}: ${err.message}`)
    socket.disconnect()
  }
  t.equal(requests.length, before, 'the upstream saw no request')
})

t.test('disconnects propagate both ways', async (t) => {
  const kicked = client(['websocket'])
  await connected(kicked)
  const gone = once(kicked, 'disconnect')
  kicked.emit('kick')
  t.equal((await gone)[0], 'io server disconnect')

  const leaving = client(['websocket'])
  await connected(leaving)
  const count = serverDisconnects.length
  leaving.disconnect()
  while (serverDisconnects.length === count) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(serverDisconnects.at(-1), 'client namespace disconnect')
})
