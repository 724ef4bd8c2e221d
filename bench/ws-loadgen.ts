// WebSocket round trips for bench/proxy.ts: N sockets, each sending a small message and waiting for
// its echo before the next, for a fixed time. Prints one JSON line in the shape of bench/loadgen.ts
// (a "request" is one round trip). Its own process, so its CPU is not the proxy's.
//   node --import tsx bench/ws-loadgen.ts <ws-url> <connections> <seconds> [headers-json]
import { printLoadResult } from './load-result.js'
import WebSocket from 'ws'

const [url, connectionsArg, secondsArg, headersArg] = process.argv.slice(2)
if (url === undefined || connectionsArg === undefined || secondsArg === undefined) {
  process.stderr.write('usage: ws-loadgen.ts <ws-url> <connections> <seconds> [headers-json]\n')
  process.exit(2)
}
const connections = Number(connectionsArg)
const headers = headersArg !== undefined ? JSON.parse(headersArg) as Record<string, string> : {}
const MESSAGE = JSON.stringify({ hello: 'world' })

const latencies: number[] = []
let errors = 0
const sockets = await Promise.all(Array.from({ length: connections }, async () => {
  const socket = new WebSocket(url, { headers })
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  socket.on('error', () => { errors++ })
  return socket
}))
const started = performance.now()
const end = started + Number(secondsArg) * 1000

async function loop (socket: WebSocket): Promise<void> {
  // A socket closed mid-run answers its last message with nothing (an error) and ends its loop.
  socket.once('close', () => { socket.emit('message', Buffer.alloc(0)) })
  while (socket.readyState === WebSocket.OPEN && performance.now() < end) {
    const t0 = performance.now()
    const echoed = await new Promise<boolean>((resolve) => {
      socket.once('message', (data: Buffer) => { resolve(data.toString() === MESSAGE) })
      socket.send(MESSAGE)
    })
    if (echoed) latencies.push(performance.now() - t0)
    else errors++
  }
}
await Promise.all(sockets.map(loop))
const elapsed = (performance.now() - started) / 1000
for (const socket of sockets) socket.close()
printLoadResult(latencies, elapsed, { non2xx: 0, errors })
process.exit(0)
