// Backpressure for proxied WebSockets. @fastify/http-proxy forwards every message with send() however
// much is already queued, so a peer that stops reading while the other keeps sending (or an upstream
// that keeps its handshake pending) would grow the gateway's memory without bound. The plugin's
// hooks run just before each send: when the destination already holds WS_HIGH_WATER_MARK bytes, the
// source's socket is no longer read until the destination's has drained. The sender then meets a
// full TCP window, exactly as if it were talking to the slow reader directly.
import type { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type WebSocket from 'ws'

/** Bytes queued toward one side of a pair above which the other side is no longer read. */
export const WS_HIGH_WATER_MARK = 1024 * 1024

type MessageData = Buffer | ArrayBuffer | Buffer[]

export class WebSocketFlow {
  /** Connected pairs, client side to upstream side. */
  private readonly pairs = new Map<WebSocket, WebSocket>()

  /** Bytes the gateway holds queued for proxied WebSockets, both directions, every pair. */
  get bufferedBytes (): number {
    let total = 0
    for (const [source, target] of this.pairs) total += source.bufferedAmount + target.bufferedAmount
    return total
  }

  /** @fastify/http-proxy's wsHooks (combined with the others by combineWsHooks). */
  readonly hooks = {
    onConnect: (_context: unknown, source: WebSocket, target: WebSocket): void => {
      this.pairs.set(source, target)
      // The plugin forwards pings and pongs without a hook: these listeners come after its own, so
      // they see the frame already queued.
      for (const [reader, writer] of [[source, target], [target, source]] as const) {
        reader.on('ping', () => { holdBack(reader, writer, 0) })
        reader.on('pong', () => { holdBack(reader, writer, 0) })
      }
    },
    onDisconnect: (_context: unknown, source: WebSocket): void => {
      this.pairs.delete(source)
    },
    /** Client to upstream: called just before the plugin's `target.send(data)`. */
    onIncomingMessage: (_context: unknown, source: WebSocket, target: WebSocket, { data }: { data: MessageData }): void => {
      holdBack(source, target, byteLength(data))
    },
    /** Upstream to client: called just before the plugin's `source.send(data)`. */
    onOutgoingMessage: (_context: unknown, source: WebSocket, target: WebSocket, { data }: { data: MessageData }): void => {
      holdBack(target, source, byteLength(data))
    }
  }
}

/** Whether queueing `incoming` more bytes behind `queued` takes a destination over the mark. */
export function overHighWaterMark (queued: number, incoming: number): boolean {
  return queued + incoming > WS_HIGH_WATER_MARK
}

/**
 * `size` bytes read from `reader` are about to be queued on `writer`. Past the mark, `reader` is paused
 * until `writer`'s TCP socket emits 'drain' (its queue is empty again) or `writer` closes. Messages
 * the reader had already read still arrive after the pause; they are forwarded, never dropped: the
 * queue stays within the mark plus one message and the rest of one socket read.
 */
function holdBack (reader: WebSocket, writer: WebSocket, size: number): void {
  if (reader.isPaused) return
  if (writer.readyState === writer.CONNECTING) {
    // The plugin queues messages for an upstream that is still answering the handshake (up to
    // WS_UPSTREAM_HANDSHAKE_TIMEOUT): read none until it has answered, one way or the other.
    pauseUntil(reader, [[writer, 'open'], [writer, 'close'], [writer, 'unexpected-response']])
    return
  }
  if (writer.readyState !== writer.OPEN || !overHighWaterMark(writer.bufferedAmount, size)) return
  // ws emits no 'drain' of its own; its socket does. With permessage-deflate off on both sides
  // (websocket.ts) bufferedAmount is exactly that socket's write queue, and once past the mark (far
  // above a socket's own highWaterMark) the socket owes a 'drain'. ws has no public accessor for it.
  const tcp = (writer as unknown as { _socket?: Socket | null })._socket
  if (tcp == null) {
    // Fail closed should a ws release hide it: a pair that cannot be held back is not kept open.
    reader.close(1013, 'peer not reading')
    writer.close(1013, 'peer not reading')
    return
  }
  pauseUntil(reader, [[tcp, 'drain'], [writer, 'close']])
}

/** Stops reading `reader` until the first of `events`. A closing reader is resumed too: its peer's close frame must be read. */
function pauseUntil (reader: WebSocket, events: Array<[EventEmitter, string]>): void {
  reader.pause()
  const readOn = (): void => {
    for (const [emitter, event] of events) emitter.off(event, readOn)
    reader.resume()
  }
  for (const [emitter, event] of events) emitter.on(event, readOn)
}

function byteLength (data: MessageData): number {
  if (Array.isArray(data)) return data.reduce((total, part) => total + part.length, 0)
  return data.byteLength
}
