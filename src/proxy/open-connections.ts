// A proxied connection lives no longer than the session that authorised it: a WebSocket, and an
// HTTP response that is still streaming (server-sent events, a long download, a long-poll). Without
// this, a response opened before a logout, a revocation or `users disable` would keep flowing for as
// long as the upstream keeps writing.
//
// The proxy's preHandler admits every request it lets through. HTTP responses are tracked with their
// session until they close. For an upgrade, the session is recorded per client TCP socket; once both
// sides of the WebSocket are connected the pair is tracked. After every revocation-list refresh
// (every 5 s) and every logout on this instance, each tracked session is re-checked with the same
// rule as every HTTP request (Sessions.recheck: expiry, logout, revocation, a disabled user).
// WebSockets whose session has ended are closed on both sides with 1008; responses are cut off
// (the connection is destroyed, which also aborts the upstream request). The same happens when a
// re-validation with the IdP changed the session's identity (groups, admin, email, name: see
// src/session/identities.ts): the upstream holds the identity of the handshake, so the WebSocket is
// closed (1008, reason "identity changed") and the client's reconnection carries the new one. An
// HTTP response under way is not cut for that: it answers the request it was, for that identity.
// Past REVOCATION_MAX_STALENESS without a revocation-list refresh (the database failing), sessions
// cannot be vouched for: WebSockets are closed with 1013 "try again later" (the client may reconnect
// once the gateway answers again), responses cut off, as for an ended session.
import type { Socket } from 'node:net'
import type { ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { SessionPayload, SessionRefusal } from '../session/session.js'
import type { SessionRecheck } from '../session/index.js'

/** Policy violation: the socket's session is no longer current. */
export const SESSION_ENDED_CODE = 1008
export const SESSION_ENDED_REASON = 'session ended'
export const IDENTITY_CHANGED_REASON = 'identity changed'
/** Try Again Later: the session cannot be checked now (RFC 6455's registry, 1013). */
export const UNVERIFIABLE_CODE = 1013
export const UNVERIFIABLE_REASON = 'sessions cannot be checked now'

type EndReason = SessionRefusal | 'identity-changed'

/** What re-checks a session read earlier (Sessions, in the gateway). */
export interface SessionRechecker {
  recheck: (payload: SessionPayload) => SessionRecheck
}

interface TrackedResponse {
  response: ServerResponse
  session: SessionPayload
}

/** Still being answered (or waiting for its answer): neither completely sent nor cut off. */
const isOpen = ({ response }: { response: ServerResponse }): boolean => !response.writableFinished && !response.destroyed

interface TrackedSocket {
  session: SessionPayload
  target: WebSocket
}

export class OpenConnections {
  /** What the preHandler let through, by client TCP socket: a session, or null (SKIP_AUTH_PATHS). */
  private readonly admitted = new WeakMap<Socket, SessionPayload | null>()
  /** Connected WebSocket pairs with a session to enforce, by the client-side socket. */
  private readonly sockets = new Map<WebSocket, TrackedSocket>()
  /**
   * HTTP responses with the session that authorised them, by client connection: a keep-alive
   * connection carries one after another (a pipelined one, several queued). Kept per connection
   * rather than in a map entry per response, which made every proxied request cost a third more CPU
   * in garbage collection (docs/PERFORMANCE.md); finished responses are dropped as new ones come.
   */
  private readonly responses = new WeakMap<Socket, TrackedResponse[]>()
  /** Connections with responses to check (removed when they close). */
  private readonly connections = new Set<Socket>()

  constructor (private readonly sessions: SessionRechecker, private readonly log: FastifyBaseLogger) {}

  /**
   * Called by the proxy's preHandler for every request it lets through. A WebSocket handshake always
   * passes here itself, so what onConnect reads for its socket is what this handshake was granted,
   * never a left-over from an earlier request on the same connection.
   */
  admit (request: FastifyRequest, reply: FastifyReply, session: SessionPayload | undefined): void {
    // Node's own verdict (IncomingMessage.upgrade, untyped): true only for a request it hands to the
    // 'upgrade' event. One with an Upgrade header that Node serves as plain HTTP is a response like
    // any other, so a client cannot dodge the tracking by adding that header.
    if ((request.raw as { upgrade?: boolean }).upgrade === true) {
      this.admitted.set(request.raw.socket, session ?? null)
      return
    }
    if (session === undefined) return
    const socket = request.raw.socket
    let tracked = this.responses.get(socket)
    if (tracked === undefined) {
      tracked = []
      this.responses.set(socket, tracked)
      this.connections.add(socket)
      socket.once('close', () => { this.connections.delete(socket) })
    }
    const open = tracked.filter(isOpen)
    open.push({ response: reply.raw, session })
    this.responses.set(socket, open)
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
        this.closeSocket(source, target, 1011, 'internal error')
        return
      }
      if (session === null) return
      this.sockets.set(source, { session, target })
      // The session may have ended while the upstream was answering the handshake (up to 30 s).
      const checked = this.sessions.recheck(session)
      if (!checked.ok) this.endSocket(source, checked.reason)
    },
    onDisconnect: (_context: unknown, source: WebSocket): void => {
      this.sockets.delete(source)
    }
  }

  /** End every tracked WebSocket and response whose session is no longer current. */
  sweep (): void {
    for (const [source, { session }] of this.sockets) {
      const checked = this.sessions.recheck(session)
      if (!checked.ok) this.endSocket(source, checked.reason)
    }
    for (const socket of this.connections) {
      for (const { response, session } of this.responses.get(socket) ?? []) {
        if (!isOpen({ response })) continue
        const checked = this.sessions.recheck(session)
        // A changed identity does not cut a response: its request was answered for the identity it
        // was sent with (and most responses are in flight for milliseconds); only an ended session does.
        if (checked.ok || checked.reason === 'identity-changed') continue
        this.log.info({ uid: session.uid, reason: checked.reason }, checked.reason === 'unverifiable' ? 'proxied response cut off: its session cannot be checked now' : 'proxied response cut off: its session ended')
        // Half a response must not look complete: destroying the connection (not ending the
        // response) makes the client see an error, and aborts the upstream request.
        response.destroy()
      }
    }
  }

  private endSocket (source: WebSocket, reason: EndReason): void {
    const tracked = this.sockets.get(source)
    if (tracked === undefined) return
    this.sockets.delete(source)
    if (reason === 'unverifiable') {
      this.log.info({ uid: tracked.session.uid, reason }, 'WebSocket closed: its session cannot be checked now')
      this.closeSocket(source, tracked.target, UNVERIFIABLE_CODE, UNVERIFIABLE_REASON)
      return
    }
    const changed = reason === 'identity-changed'
    this.log.info({ uid: tracked.session.uid, reason }, changed ? 'WebSocket closed: its session\'s identity changed' : 'WebSocket closed: its session ended')
    this.closeSocket(source, tracked.target, SESSION_ENDED_CODE, changed ? IDENTITY_CHANGED_REASON : SESSION_ENDED_REASON)
  }

  /**
   * Both sides at once: the proxy would pass the client's close on to the upstream only once the
   * client answers it (up to ws's 30 s closing timeout for a client that never does).
   */
  private closeSocket (source: WebSocket, target: WebSocket, code: number, reason: string): void {
    source.close(code, reason)
    target.close(code, reason)
  }
}
