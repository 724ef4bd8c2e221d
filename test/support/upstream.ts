// A real HTTP upstream for tests: records what reached it and answers in the ways the proxy must
// carry intact (echo, streamed body, large upload digest, slow stream).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'

export interface Received {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  bodyLength: number
  bodySha256: string
  body: string
}

export interface TestUpstream {
  url: string
  port: number
  received: Received[]
  /** Server-sent event streams (`/events`) still open on the upstream's side. */
  openEventStreams: () => number
  server: Server
  close: () => Promise<void>
}

export async function startUpstream (port = 0): Promise<TestUpstream> {
  const received: Received[] = []
  let eventStreams = 0
  const server = createServer((req, res) => {
    const hash = createHash('sha256')
    let length = 0
    const keep: Buffer[] = []
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      length += chunk.length
      if (length <= 64 * 1024) keep.push(chunk)
    })
    req.on('end', () => {
      const entry: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: length,
        bodySha256: hash.digest('hex'),
        body: Buffer.concat(keep).toString('utf8')
      }
      received.push(entry)
      const path = (req.url ?? '/').split('?')[0]
      if (path === '/stream') {
        // A chunked response written over time: the client must see the first part before the end.
        res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'stream', connection: 'keep-alive', 'keep-alive': 'timeout=5' })
        let i = 0
        const timer = setInterval(() => {
          res.write(`chunk ${i}\n`)
          if (++i === 5) { clearInterval(timer); res.end('done\n') }
        }, 50)
        return
      }
      if (path === '/events') {
        // Server-sent events that never end on their own: one event every 50 ms until the client goes.
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
        eventStreams++
        let i = 0
        const timer = setInterval(() => { res.write(`data: ${i++}\n\n`) }, 50)
        res.once('close', () => { clearInterval(timer); eventStreams-- })
        return
      }
      if (path === '/big') {
        const size = 20 * 1024 * 1024
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) })
        const block = Buffer.alloc(1024 * 1024, 0x61)
        let sent = 0
        const pump = (): void => {
          while (sent < size) {
            sent += block.length
            if (!res.write(block)) { res.once('drain', pump); return }
          }
          res.end()
        }
        pump()
        return
      }
      if (path === '/set-cookie') {
        res.writeHead(200, { 'set-cookie': ['app=1; Path=/', 'authgate=forged; Path=/', '__Host-authgate=x; Path=/; Secure'] })
        res.end('ok')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ method: entry.method, url: entry.url, bodyLength: length, bodySha256: entry.bodySha256 }))
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const actualPort = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    received,
    openEventStreams: () => eventStreams,
    server,
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}
