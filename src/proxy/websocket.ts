// WebSocket upgrades. @fastify/http-proxy dispatches each upgrade through Fastify's router (after
// rewriteUrl), so the proxy's preHandler authorises it exactly like an HTTP request: without a
// session it answers 401 on the raw socket and no upstream connection is ever opened. These are
// the options for the upstream side once it is authorised.
import type { ClientRequest } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import type { HeaderMap } from '../identity/headers.js'
import { upstreamWebSocketHeaders, type ForwardContext } from './forwarding.js'

/** Largest message accepted in either direction (ws's default is 100 MiB). */
export const WS_MAX_PAYLOAD = 16 * 1024 * 1024
/** The upstream must complete its handshake within this time, or the client's socket is closed (1011). */
export const WS_UPSTREAM_HANDSHAKE_TIMEOUT = 30_000

export function webSocketOptions (context: (request: FastifyRequest) => Omit<ForwardContext, 'upgrade'>): {
  wsServerOptions: { maxPayload: number, perMessageDeflate: false }
  wsClientOptions: { maxPayload: number, handshakeTimeout: number, perMessageDeflate: false, finishRequest: (request: ClientRequest, socket: WebSocket) => void, rewriteRequestHeaders: (headers: HeaderMap, request: FastifyRequest) => HeaderMap }
} {
  return {
    // No permessage-deflate on either side (ws offers it to the upstream by default): messages are
    // forwarded as they came, and each socket's bufferedAmount is then exactly its TCP write queue,
    // which is what WebSocketFlow's backpressure waits on (websocket-flow.ts).
    wsServerOptions: { maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false },
    wsClientOptions: {
      maxPayload: WS_MAX_PAYLOAD,
      handshakeTimeout: WS_UPSTREAM_HANDSHAKE_TIMEOUT,
      perMessageDeflate: false,
      finishRequest: abortOnRefusal,
      // `headers` are the plugin's static extras (none); everything comes from the client's request.
      rewriteRequestHeaders: (_headers, request) => upstreamWebSocketHeaders(request.headers, context(request))
    }
  }
}

/**
 * The proxy listens for 'unexpected-response' (an upstream answering the upgrade with anything but
 * 101) to close the client's socket with 1011, and ws then leaves aborting the upstream request to
 * its listeners: without this, a keep-alive upstream connection would stay open forever.
 */
function abortOnRefusal (request: ClientRequest, socket: WebSocket): void {
  socket.once('unexpected-response', (req: ClientRequest) => { req.destroy() })
  request.end()
}

type WsMessage = { data: Buffer | ArrayBuffer | Buffer[], binary: boolean }

/** The @fastify/http-proxy wsHooks this gateway uses. */
export interface WsHooks {
  onConnect?: (context: unknown, source: WebSocket, target: WebSocket) => void
  onDisconnect?: (context: unknown, source: WebSocket) => void
  onIncomingMessage?: (context: unknown, source: WebSocket, target: WebSocket, message: WsMessage) => void
  onOutgoingMessage?: (context: unknown, source: WebSocket, target: WebSocket, message: WsMessage) => void
}

/** The plugin takes one set of hooks: each of these is called in turn, in the order given. */
export function combineWsHooks (...all: WsHooks[]): Required<WsHooks> {
  return {
    onConnect: (context, source, target) => { for (const hooks of all) hooks.onConnect?.(context, source, target) },
    onDisconnect: (context, source) => { for (const hooks of all) hooks.onDisconnect?.(context, source) },
    onIncomingMessage: (context, source, target, message) => { for (const hooks of all) hooks.onIncomingMessage?.(context, source, target, message) },
    onOutgoingMessage: (context, source, target, message) => { for (const hooks of all) hooks.onOutgoingMessage?.(context, source, target, message) }
  }
}
