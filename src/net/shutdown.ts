// A graceful stop (main.ts's SIGTERM handler calls the gateway's close()): no new connections, the
// requests and WebSockets in progress get SHUTDOWN_GRACE_PERIOD to finish, and whatever is still
// open then is closed, so the process always exits in time.
//
// Left to themselves, Node and the proxy plugin do neither. Node's server.close() waits for every
// connection: a server-sent event stream or a long-poll kept it waiting for as long as the upstream
// kept it open, and a keep-alive connection whose answer went out after close() began stayed open for
// the keep-alive timeout (Fastify's 72 s). @fastify/http-proxy wraps server.close() to send every
// WebSocket a close frame at once, cutting them off at the first instant. So this hook, which runs
// before Fastify calls server.close(), stops accepting itself, closes each connection as soon as it
// is idle, and holds server.close() back until the WebSockets have ended or the grace period is over.
// Then the WebSockets still open get 1001 (going away: clients reconnect, to another replica if there
// is one) and a moment to answer it; every other connection is closed (its upstream request is
// cancelled with it, see proxy/hang-up.ts).
import { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { OpenWebSockets } from '../proxy/open-websockets.js'

/** How often a closing gateway looks for connections that have become idle, and for WebSockets still open. */
const IDLE_CHECK_MS = 100
/** After the grace period, how long a WebSocket has to answer its close frame before its connection is closed. */
export const CLOSE_HANDSHAKE_MS = 1000
/** WebSocket close code for a server that is going away (RFC 6455 §7.4.1). */
export const GOING_AWAY = 1001

export interface ShutdownOptions {
  /** SHUTDOWN_GRACE_PERIOD, in ms. */
  graceMs: number
  webSockets: OpenWebSockets
}

export function closeConnectionsOnShutdown (app: FastifyInstance, options: ShutdownOptions): void {
  const { graceMs, webSockets } = options
  // Every TCP connection, WebSockets included: Node's closeAllConnections() forgets a connection once
  // it is upgraded.
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  })
  app.addHook('preClose', (done) => {
    const { server } = app
    // Node's own close, not the proxy plugin's wrapper of it (see above): the listening socket is
    // closed (new connections are refused) and the idle ones with it. Fastify's server.close() later
    // finds it closed, which it expects.
    Server.prototype.close.call(server)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      done()
    }
    const check = (): void => {
      server.closeIdleConnections()
      if (webSockets.size === 0) release()
    }
    const idle = setInterval(check, IDLE_CHECK_MS)
    let last: NodeJS.Timeout | undefined
    const grace = setTimeout(() => {
      webSockets.closeAll(GOING_AWAY, 'server shutting down')
      const upgraded = webSockets.tcpSockets()
      for (const socket of sockets) if (!upgraded.has(socket)) socket.destroy()
      release()
      last = setTimeout(() => { for (const socket of sockets) socket.destroy() }, CLOSE_HANDSHAKE_MS)
      last.unref()
    }, graceMs)
    idle.unref()
    grace.unref()
    // Every connection is closed: nothing left to wait for.
    server.once('close', () => {
      clearInterval(idle)
      clearTimeout(grace)
      clearTimeout(last)
      release()
    })
    check()
  })
}
