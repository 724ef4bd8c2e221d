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
