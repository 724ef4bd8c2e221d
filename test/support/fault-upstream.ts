// An upstream application that fails on purpose, on a real loopback socket (node:http): it resets
// connections before or during its answer, hangs, answers 503, or holds its answer (a long-poll, an
// event stream) until the test releases it. Every request is counted per path, and every request
// still held can be seen and released, so a test waits on events, never on time.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'

/**
 * Routed by the path's last segment (`/public/hang` hangs too; the query string is ignored), which
 * is also the name the counters below use:
 * - `/reset-before`: destroys the connection without answering;
 * - `/cut`, `/cut-chunked`: 200 with half of a 64 KiB body (with or without Content-Length), then destroys the connection;
 * - `/hang`: reads the request and never answers (until released: 200 `released`);
 * - `/long-poll`: sends 200 headers at once, the body (`{"event":"ready"}`) when released;
 * - `/events`: server-sent events: headers and `data: 0` at once, one more event per release, ends after `data: 2`;
 * - `/busy`: 503 with `Retry-After: 120` and `busy` (`/busy-bare`: without Retry-After);
 * - `/upload`: reads the whole body and answers its length and SHA-256;
 * - anything else: 200 `{"route": ...}`.
 */
export interface FaultUpstream {
  url: string
  port: number
  /** Requests received, per route (`/hang`). */
  hits: (route: string) => number
  /** Requests of this route held now (received, not yet answered, connection open). */
  held: (route: string) => number
  /** Requests of this route whose connection closed while held (the gateway gave up on them). */
  closedUnanswered: (route: string) => number
  /** Moves the oldest held request of this route along (answers it, or sends its next part). */
  release: (route: string) => void
  close: () => Promise<void>
}

interface Held { res: ServerResponse, step: () => void }

export async function startFaultUpstream (port = 0): Promise<FaultUpstream> {
  const hits = new Map<string, number>()
  const held = new Map<string, Held[]>()
  const closedUnanswered = new Map<string, number>()
  const count = (map: Map<string, number>, path: string): void => { map.set(path, (map.get(path) ?? 0) + 1) }

  const hold = (path: string, res: ServerResponse, step: () => void): void => {
    const entry = { res, step }
    const list = held.get(path) ?? []
    list.push(entry)
    held.set(path, list)
    res.once('close', () => {
      const i = list.indexOf(entry)
      if (i < 0) return
      list.splice(i, 1)
      count(closedUnanswered, path)
    })
  }

  const handle = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    switch (path) {
      case '/reset-before':
        req.socket.destroy()
        return
      case '/cut':
      case '/cut-chunked': {
        const half = Buffer.alloc(32 * 1024, 0x61)
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...(path === '/cut' ? { 'content-length': String(2 * half.length) } : {}) })
        // Once the first half is on the wire: the connection dies mid-answer.
        res.write(half, () => { req.socket.destroy() })
        return
      }
      case '/hang':
        hold(path, res, () => { res.end('released') })
        return
      case '/long-poll':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        res.flushHeaders()
        hold(path, res, () => { res.end('{"event":"ready"}') })
        return
      case '/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
        let next = 0
        const send = (): void => {
          res.write(`data: ${next++}\n\n`)
          if (next === 3) res.end()
          else hold(path, res, send)
        }
        send()
        return
      }
      case '/busy':
      case '/busy-bare':
        res.writeHead(503, { 'content-type': 'text/plain', ...(path === '/busy' ? { 'retry-after': '120' } : {}) })
        res.end('busy')
        return
      case '/upload': {
        const hash = createHash('sha256')
        let length = 0
        req.on('data', (chunk: Buffer) => { hash.update(chunk); length += chunk.length })
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ length, sha256: hash.digest('hex') }))
        })
        return
      }
      default:
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ route: path }))
    }
  }

  const server: Server = createServer((req, res) => {
    const path = '/' + ((req.url ?? '/').split('?', 1)[0]!.split('/').pop() ?? '')
    count(hits, path)
    // Everything but the upload answers without reading a body: drain it so the connection stays usable.
    if (path !== '/upload') req.resume()
    handle(req, res, path)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const actualPort = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    hits: (route) => hits.get(route) ?? 0,
    held: (route) => held.get(route)?.length ?? 0,
    closedUnanswered: (route) => closedUnanswered.get(route) ?? 0,
    release: (route) => {
      const entry = held.get(route)?.shift()
      if (entry === undefined) throw new Error(`no ${route} request is held`)
      entry.step()
    },
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}
