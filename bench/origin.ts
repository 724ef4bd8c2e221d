// The benchmark's origin: Fastify's hello world (`{"hello":"world"}` on every GET path) and a
// WebSocket echo on the same port, in its own process (bench/proxy.ts forks it; the URL comes back
// over IPC). It counts the requests and WebSocket handshakes that carried a signed identity (and an
// X-Identity-Assertion), so that the benchmark can check that each target forwarded what it should.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

export interface OriginStats { total: number, signed: number, asserted: number, webSockets: number, signedWebSockets: number }
const stats: OriginStats = { total: 0, signed: 0, asserted: 0, webSockets: 0, signedWebSockets: 0 }

const app = Fastify()
app.get('/*', async (request) => {
  stats.total++
  if (request.headers['x-auth-signature'] !== undefined) stats.signed++
  if (request.headers['x-identity-assertion'] !== undefined) stats.asserted++
  return { hello: 'world' }
})
const wss = new WebSocketServer({ server: app.server })
wss.on('connection', (ws, request) => {
  stats.webSockets++
  if (request.headers['x-auth-signature'] !== undefined) stats.signedWebSockets++
  ws.on('message', (data, isBinary) => { ws.send(data, { binary: isBinary }) })
})
// Longer than any proxy's idle timeout: the proxy's pool, not the origin, decides when to close.
app.server.keepAliveTimeout = 65_000

await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.({ url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` })
process.on('message', (message: { stats?: boolean }) => {
  if (message.stats === true) process.send?.({ stats })
})
process.on('disconnect', () => { process.exit(0) })
process.on('SIGTERM', () => { process.exit(0) })
