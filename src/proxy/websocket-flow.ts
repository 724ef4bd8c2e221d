// Backpressure for proxied WebSockets. @fastify/http-proxy forwards every message with send() however
// much is already queued, so a peer that stops reading while the other keeps sending would grow the
// gateway's memory without bound.
import type WebSocket from 'ws'

/** Bytes queued toward one side of a pair above which the other side is no longer read. */
export const WS_HIGH_WATER_MARK = 1024 * 1024

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
    },
    onDisconnect: (_context: unknown, source: WebSocket): void => {
      this.pairs.delete(source)
    }
  }
}
