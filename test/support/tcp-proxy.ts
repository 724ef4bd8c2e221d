// A TCP relay on an ephemeral loopback port that a test can cut and restore: one gateway reaches
// the shared PostgreSQL through it, so the test can take the database away from that gateway alone
// while the server keeps serving every other test.
import { createServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface TcpProxy {
  port: number
  /** `url` (a postgres:// URL, say) with its host and port replaced by the relay's. */
  through: (url: string) => string
  /**
   * The database goes away: every relayed connection is reset now, and new ones are accepted and
   * closed at once (pg sees "Connection terminated unexpectedly", as when a server dies mid-flight).
   */
  cut: () => void
  /** Relay again: new connections reach the target. */
  restore: () => void
  /** Connections accepted while cut (and closed at once). */
  refused: number
  close: () => Promise<void>
}

export async function startTcpProxy (target: { host: string, port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>()
  let cut = false
  const proxy: TcpProxy = {
    port: 0,
    through: (url) => {
      const u = new URL(url)
      u.hostname = '127.0.0.1'
      u.port = String(proxy.port)
      return u.href
    },
    cut: () => {
      cut = true
      for (const socket of open) socket.resetAndDestroy()
      open.clear()
    },
    restore: () => { cut = false },
    refused: 0,
    close: async () => {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
  const server = createServer((client) => {
    if (cut) {
      proxy.refused++
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    const upstream = connect(target.port, target.host)
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a)
      a.on('error', () => { b.destroy() })
      a.on('close', () => { open.delete(a); b.destroy() })
      a.pipe(b)
    }
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  proxy.port = (server.address() as AddressInfo).port
  return proxy
}
