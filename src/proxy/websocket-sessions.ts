// A proxied WebSocket lives no longer than the session that authorised its handshake. The proxy's
// preHandler records, per client TCP socket, the session it let through; once both sides are
// connected the pair is tracked, and after every revocation-list refresh (every 5 s) each tracked
// session is re-checked with the same rule as every HTTP request (Sessions.isCurrent: expiry,
// revocation, a disabled user). Sockets whose session has ended are closed on both sides with 1008.
// A logout cannot be seen here: it deletes the cookie in one browser and leaves no trace on the
// server (docs/UPSTREAM.md).
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { SessionPayload } from '../session/session.js'

/** Policy violation: the socket's session is no longer current. */
export const SESSION_ENDED_CODE = 1008
export const SESSION_ENDED_REASON = 'session ended'

export interface SessionCheck {
  isCurrent: (payload: SessionPayload, now?: number) => boolean
}

interface Tracked {
  session: SessionPayload
  target: WebSocket
}

export class WebSocketSessions {
  /** What the preHandler let through, by client TCP socket: a session, or null (SKIP_AUTH_PATHS). */
  private readonly admitted = new WeakMap<Socket, SessionPayload | null>()
  /** Connected pairs with a session to enforce, by the client-side socket. */
  private readonly open = new Map<WebSocket, Tracked>()

  constructor (private readonly sessions: SessionCheck, private readonly log: FastifyBaseLogger) {}

  /**
   * Called by the proxy's preHandler for every request it lets through; only upgrades are recorded.
   * A WebSocket handshake always passes here itself, so what onConnect reads for its socket is what
   * this handshake was granted, never a left-over from an earlier request on the same connection.
   */
  admit (request: FastifyRequest, session: SessionPayload | undefined): void {
    if (request.headers.upgrade !== undefined) this.admitted.set(request.raw.socket, session ?? null)
  }

  /** @fastify/http-proxy's wsHooks: they see the sockets, never the request, hence `admitted`. */
  readonly hooks = {
    onConnect: (_context: unknown, source: WebSocket, target: WebSocket): void => {
      // The client may have left while the upstream was answering; onDisconnect follows then.
      if (source.readyState !== source.OPEN) return
      // ws has no public accessor for the TCP socket under a server-side WebSocket; `_socket` is
      // the socket of the upgrade request (request.raw.socket), set once by ws's server.
      const tcp = (source as unknown as { _socket?: Socket | null })._socket
      const session = tcp != null ? this.admitted.get(tcp) : undefined
      if (session === undefined) {
        // Fail closed: a connection the preHandler did not record cannot be kept in check.
        this.log.error('proxied WebSocket without a recorded authorisation; closing it')
        this.close(source, target, 1011, 'internal error')
        return
      }
      if (session === null) return
      this.open.set(source, { session, target })
      // The session may have ended while the upstream was answering the handshake (up to 30 s).
      if (!this.sessions.isCurrent(session)) this.end(source)
    },
    onDisconnect: (_context: unknown, source: WebSocket): void => {
      this.open.delete(source)
    }
  }

  /** Close every tracked socket whose session is no longer current. */
  sweep (now = Math.floor(Date.now() / 1000)): void {
    for (const [source, { session }] of this.open) {
      if (!this.sessions.isCurrent(session, now)) this.end(source)
    }
  }

  private end (source: WebSocket): void {
    const tracked = this.open.get(source)
    if (tracked === undefined) return
    this.open.delete(source)
    this.log.info({ uid: tracked.session.uid }, 'WebSocket closed: its session ended')
    this.close(source, tracked.target, SESSION_ENDED_CODE, SESSION_ENDED_REASON)
  }

  /**
   * Both sides at once: the proxy would pass the client's close on to the upstream only once the
   * client answers it (up to ws's 30 s closing timeout for a client that never does).
   */
  private close (source: WebSocket, target: WebSocket, code: number, reason: string): void {
    source.close(code, reason)
    target.close(code, reason)
  }
}
