// How a client's hang-up reaches the upstream request: the signal rides on the headers object through
// @fastify/reply-from's copy of it, never becomes a header, and UpstreamPool hands it to undici.
import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { ClientGoneError, ClientSignal, UpstreamPool, withClientSignal } from '../../src/proxy/hang-up.js'

t.test('the signal survives the copy reply-from makes, and is no header', async (t) => {
  const headers = withClientSignal({ 'x-user': 'alice' }, new ClientSignal())
  t.same(Object.keys(headers), ['x-user'], 'not among the header names')
  t.equal(JSON.stringify(headers), '{"x-user":"alice"}')
  t.equal(Object.getOwnPropertySymbols(Object.assign({}, headers)).length, 1, 'Object.assign keeps it')
  t.same(Object.getOwnPropertySymbols(withClientSignal({ a: '1' }, undefined)), [], 'no signal: nothing added')
})

t.test('UpstreamPool cancels a request still waiting for its answer when the signal aborts', async (t) => {
  const received: IncomingMessage[] = []
  const server = createServer((req) => { received.push(req) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const pool = new UpstreamPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(async () => { await pool.destroy(); server.closeAllConnections(); server.close() })

  const signal = new ClientSignal()
  const answer = pool.request({ method: 'GET', path: '/hold', headers: withClientSignal({}, signal) })
  answer.catch(() => {})
  while (received.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  const upstreamClosed = new Promise((resolve) => { received[0]!.once('close', resolve).on('error', () => {}) })
  signal.abort(new ClientGoneError())
  await t.rejects(answer, { code: 'AUTHGATE_CLIENT_GONE' }, 'the request ends, with the reason')
  await upstreamClosed
  t.pass('the upstream saw its request closed')
  signal.abort(new Error('again'))
  t.equal(signal.reason?.message, 'the client closed the connection before the answer was complete', 'aborts once: the first reason stays')
})

t.test('UpstreamPool reports a failed request through its signal, with the request\'s logger muted below errors meanwhile', async (t) => {
  const server = createServer((req) => { req.socket.destroy() })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const pool = new UpstreamPool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(async () => { await pool.destroy(); server.close() })
  const levels: string[] = []
  const logger = { level: 'info', child: (_b: object, options: { level: string }) => ({ ...logger, level: options.level }) }
  const request = { log: logger as unknown as import('fastify').FastifyBaseLogger }
  const signal = new ClientSignal(request)
  const failed = await new Promise<Error | null>((resolve) => {
    pool.request({ method: 'GET', path: '/', headers: withClientSignal({}, signal) }, (err) => {
      levels.push(request.log.level, signal.failureLog?.level ?? 'none')
      resolve(err)
    })
  })
  t.match(failed, { code: 'UND_ERR_SOCKET' })
  t.same(levels, ['error', 'info'], 'muted while the proxy library hears of it; the request\'s own logger kept aside')
  t.equal(request.log, logger, 'and restored afterwards')
  t.equal(signal.failureLog, undefined)
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
