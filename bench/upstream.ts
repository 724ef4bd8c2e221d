// Benchmark upstream: a minimal node:http server answering every request with the same small JSON
// body. Run in its own process (bench/proxy.ts forks it) so it gets its own CPU time. It counts the
// requests that carried a signed identity, so the orchestrator can check that the gateway really
// signed what it forwarded.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const BODY = Buffer.from(JSON.stringify({ ok: true, service: 'authgate-bench-upstream', items: [1, 2, 3] }))
let signed = 0
let total = 0

const server = createServer((req, res) => {
  total++
  if (req.headers['x-auth-signature'] !== undefined) signed++
  req.resume()
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length })
  res.end(BODY)
})
// Longer than any client's idle timeout: the proxy's pool, not the upstream, decides when to close.
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.send?.({ ready: true, url: `http://127.0.0.1:${port}` })
})
process.on('message', (message: { stats?: boolean }) => {
  if (message.stats === true) process.send?.({ stats: { total, signed } })
})
process.on('disconnect', () => { process.exit(0) })
process.on('SIGTERM', () => { process.exit(0) })
