// Guards shutdown (main.ts's SIGTERM handler) against connections that never end on their own.
// Node's server.close() stops accepting, closes the connections idle at that moment and waits for all
// the others: a server-sent event stream or a long-poll kept it waiting for as long as the upstream
// kept it open, and a keep-alive connection whose answer went out after close() began stayed open for
// the keep-alive timeout (Fastify's 72 s). Both outlast main.ts's 10 s, after which it exits without
// closing the database. Now requests in progress get a grace period to finish, each connection is
// closed as soon as it is idle, and whatever is still open when the grace period ends is closed (its
// upstream request is cancelled with it, see proxy/hang-up.ts).
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'

/** How long requests in progress may take to finish once the gateway is closing (well within main.ts's 10 s). */
export const SHUTDOWN_GRACE_MS = 5000

/** How often a closing gateway looks for connections that have become idle. */
const IDLE_CHECK_MS = 100

export function closeConnectionsOnShutdown (app: FastifyInstance, graceMs = SHUTDOWN_GRACE_MS): void {
  // Every TCP connection, WebSockets included: Node's closeAllConnections() forgets a connection once
  // it is upgraded, and a WebSocket client that never answers the close frame would hold close() for
  // ws's closing timeout (30 s).
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  })
  app.addHook('preClose', (done) => {
    const { server } = app
    const idle = setInterval(() => { server.closeIdleConnections() }, IDLE_CHECK_MS)
    const grace = setTimeout(() => { for (const socket of sockets) socket.destroy() }, graceMs)
    idle.unref()
    grace.unref()
    server.once('close', () => {
      clearInterval(idle)
      clearTimeout(grace)
    })
    done()
  })
}
