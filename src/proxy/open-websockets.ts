// The proxied WebSockets open right now (both sides connected): counted for the metrics, and given
// their close frame when a shutdown's grace period ends (net/shutdown.ts). Each one leaves the set
// when its client-side socket closes, however that happens.
import type WebSocket from 'ws'

export class OpenWebSockets {
  private readonly open = new Set<WebSocket>()

  /** @fastify/http-proxy's onConnect: the upstream side is connected too. */
  readonly hooks = {
    onConnect: (_context: unknown, source: WebSocket): void => {
      if (source.readyState !== source.OPEN) return
      this.open.add(source)
      source.once('close', () => { this.open.delete(source) })
    }
  }

  get size (): number {
    return this.open.size
  }

  /** Close each one (the proxy closes its upstream side with the same code). */
  closeAll (code: number, reason: string): void {
    for (const socket of this.open) socket.close(code, reason)
  }

  /** The TCP sockets under them (ws's `_socket`, as in open-connections.ts). */
  tcpSockets (): Set<unknown> {
    const sockets = new Set<unknown>()
    for (const socket of this.open) {
      const tcp = (socket as unknown as { _socket?: unknown })._socket
      if (tcp != null) sockets.add(tcp)
    }
    return sockets
  }
}
