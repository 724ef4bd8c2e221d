// A real WebSocket upstream (package ws) for tests: echoes messages, closes on request, and records
// every TCP connection, handshake and close so tests can prove what did (or did not) reach it.
// Under /sink it echoes nothing: tests drive those sockets (upstream.sockets) themselves; under
// /sink/held it also leaves the handshake unanswered until the test calls what it put in `held`.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

export interface WsUpstream {
  url: string
  /** TCP connections accepted, of any kind. */
  connections: number
  handshakes: Array<{ url: string, headers: IncomingHttpHeaders }>
  /** TCP connections currently open. */
  open: () => number
  /** Close codes and reasons the upstream saw from the gateway's side. */
  closes: Array<{ code: number, reason: string }>
  sockets: Set<WebSocket>
  /** Plain HTTP requests (not upgrades). */
  requests: Array<{ url: string, headers: IncomingHttpHeaders }>
  /** Answer upgrades to paths starting with this with 403 instead of accepting them. */
  refusePrefix: string
  /** Upgrades to /sink/held waiting for their answer: call one to accept that handshake. */
  held: Array<() => void>
  close: () => Promise<void>
}

export async function startWsUpstream (): Promise<WsUpstream> {
  const tcp = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    state.requests.push({ url: req.url ?? '', headers: req.headers })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  })
  const wss = new WebSocketServer({ noServer: true })
  const state: WsUpstream = {
    url: '',
    connections: 0,
    handshakes: [],
    closes: [],
    sockets: new Set(),
    requests: [],
    refusePrefix: '/refuse',
    held: [],
    open: () => tcp.size,
    close: async () => {
      for (const s of state.sockets) s.terminate()
      for (const s of tcp) s.destroy()
      await new Promise<void>((resolve) => { wss.close(() => { server.close(() => { resolve() }) }) })
    }
  }
  server.on('connection', (socket: Socket) => {
    state.connections++
    tcp.add(socket)
    socket.on('close', () => tcp.delete(socket))
  })
  server.on('upgrade', (req, socket, head) => {
    state.handshakes.push({ url: req.url ?? '', headers: req.headers })
    if ((req.url ?? '').startsWith(state.refusePrefix)) {
      // /refuse-open: a refusal that keeps the connection open, as a keep-alive server would.
      if ((req.url ?? '').startsWith(state.refusePrefix + '-open')) {
        // Like a keep-alive server: the connection stays until the other side closes it.
        socket.on('end', () => { socket.destroy() })
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
      } else socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    if ((req.url ?? '').startsWith('/sink/held')) {
      state.held.push(() => { accept(req, socket, head) })
      return
    }
    accept(req, socket, head)
  })
  function accept (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    wss.handleUpgrade(req, socket, head, (ws) => {
      state.sockets.add(ws)
      const sink = (req.url ?? '').startsWith('/sink')
      ws.on('message', (data, binary) => {
        if (sink) return
        const text = data.toString()
        if (!binary && text.startsWith('close:')) {
          const [, code, reason] = text.split(':')
          ws.close(Number(code), reason)
          return
        }
        if (!binary && text === 'whoami') {
          ws.send(JSON.stringify({ user: req.headers['x-user'] ?? null, url: req.url }))
          return
        }
        ws.send(data, { binary })
      })
      ws.on('close', (code, reason) => {
        state.sockets.delete(ws)
        state.closes.push({ code, reason: reason.toString() })
      })
    })
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return state
}
