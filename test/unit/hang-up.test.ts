// The proxy's pool: a request aborted because its client left frees its connection, and requests that
// wait for a free connection are told.
import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import type { Dispatcher } from 'undici'
import { ClientGoneError, UpstreamPool } from '../../src/proxy/hang-up.js'

t.test('a request aborted with ClientGoneError while it waits for its answer: the upstream sees it closed, and its handler why', async (t) => {
  const received: IncomingMessage[] = []
  const server = createServer((req) => { received.push(req) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const pool = new UpstreamPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(async () => { await pool.destroy(); server.closeAllConnections(); server.close() })

  let controller: Dispatcher.DispatchController | undefined
  const failed = new Promise<Error>((resolve) => {
    pool.dispatch({ method: 'GET', path: '/hold' }, {
      onRequestStart: (c) => { controller = c },
      onResponseError: (_c, err) => { resolve(err) }
    })
  })
  while (received.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  const upstreamClosed = new Promise((resolve) => { received[0]!.once('close', resolve).on('error', () => {}) })
  controller!.abort(new ClientGoneError())
  t.match(await failed, { code: 'AUTHGATE_CLIENT_GONE' }, 'the request ends, with the reason')
  await upstreamClosed
  t.pass('the upstream saw its request closed')
})

t.test('UpstreamPool tells when a request has to wait for a free connection', async (t) => {
  const held: Array<import('node:http').ServerResponse> = []
  const server = createServer((_req, res) => { held.push(res) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const queued: number[] = []
  const pool = new UpstreamPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1, pipelining: 1 }, { queued: (n) => { queued.push(n) } })
  t.teardown(async () => { await pool.destroy(); server.closeAllConnections(); server.close() })
  const first = pool.request({ method: 'GET', path: '/a' })
  t.same(queued, [], 'the first takes the only connection')
  const second = pool.request({ method: 'GET', path: '/b' })
  const third = pool.request({ method: 'GET', path: '/c' })
  t.same(queued, [1, 2], 'the next ones wait, and say how many wait')
  while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  held.shift()!.end('a')
  await (await first).body.text()
  while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  held.shift()!.end('b')
  await (await second).body.text()
  while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  held.shift()!.end('c')
  t.equal(await (await third).body.text(), 'c', 'each in turn')
})
