// How much memory one WebSocket whose reader stopped reading costs the gateway process: the gateway
// as production runs it (node dist/src/main.js, bench/production-gateway.ts), a writer that sends 64 KiB messages as fast as its
// own socket takes them, a reader whose TCP socket is paused, and the gateway's resident set read
// from /proc. A gateway without backpressure takes everything the writer sends and queues it; with it,
// the writer meets a full window after the loopback's buffers and WS_HIGH_WATER_MARK. Then the reader
// reads again: every message must arrive, in order.
//   --direction down: the upstream writes, the client stops reading (default); up: the reverse.
//
//   node --import tsx bench/websocket-backpressure.ts [--direction down|up] [--mb 400] [--seconds 5]
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'
import { freePort } from './processes.js'
import { ensureBuilt, signIn, startGateway } from './production-gateway.js'

const { values: args } = parseArgs({ options: { direction: { type: 'string', default: 'down' }, mb: { type: 'string', default: '400' }, seconds: { type: 'string', default: '5' } } })
if (args.direction !== 'down' && args.direction !== 'up') throw new Error('--direction is down or up')
const limit = Number(args.mb) * 1024 * 1024
const MESSAGE = 64 * 1024
/** The writer keeps at most this much in its own queue: it sends as fast as its socket drains. */
const WRITER_QUEUE = 4 * 1024 * 1024
const MiB = (bytes: number): string => (bytes / 1048576).toFixed(1)

const upstreamSockets: WebSocket[] = []
const server = createServer()
const wss = new WebSocketServer({ server })
wss.on('connection', (ws) => { upstreamSockets.push(ws) })
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

ensureBuilt('auto')
const gateway = await startGateway({ port: await freePort(), upstreamUrl })
const base = gateway.url

/** VmRSS and VmHWM (the peak) of a process, in bytes. */
function memory (pid: number): { rss: number, peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 }
}

// Sign in as a browser would.
const cookie = await signIn(base, 'bench')

async function connect (): Promise<{ client: WebSocket, upstreamSide: WebSocket }> {
  const known = upstreamSockets.length
  const client = new WebSocket(base.replace(/^http/, 'ws') + '/flood', { headers: { cookie } })
  await new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) })
  while (upstreamSockets.length === known) await sleep(1)
  return { client, upstreamSide: upstreamSockets[known]! }
}

// One socket opened and closed first, so that start-up allocations are not counted.
const warm = await connect()
warm.client.close()
await sleep(500)

const pid = gateway.pid
const before = memory(pid)
const { client, upstreamSide } = await connect()
const [writer, reader] = args.direction === 'down' ? [upstreamSide, client] : [client, upstreamSide]
reader.pause()

let highest = before.rss
const sampler = setInterval(() => { highest = Math.max(highest, memory(pid).rss) }, 10)

// Flood until `--mb` is sent or the writer has been stuck (its queue full) for `--seconds`.
let sent = 0
let stuckSince = Date.now()
while (sent < limit && Date.now() - stuckSince < Number(args.seconds) * 1000) {
  if (writer.bufferedAmount >= WRITER_QUEUE) { await sleep(5); continue }
  const message = Buffer.alloc(MESSAGE, sent / MESSAGE)
  message.writeUInt32BE(sent / MESSAGE, 0)
  writer.send(message)
  sent += MESSAGE
  stuckSince = Date.now()
  await new Promise((resolve) => setImmediate(resolve))
}
const queued = writer.bufferedAmount
const stalled = memory(pid)

// The reader reads again: everything must arrive, in order.
const started = Date.now()
let received = 0
let inOrder = true
await new Promise<void>((resolve) => {
  reader.on('message', (data: Buffer) => {
    if (data.readUInt32BE(0) !== received / MESSAGE || data.length !== MESSAGE) inOrder = false
    received += data.length
    if (received === sent) resolve()
  })
  reader.resume()
})
const drained = Date.now() - started
clearInterval(sampler)
client.close()
await sleep(1000)
const after = memory(pid)

const who = args.direction === 'down' ? { writer: 'upstream', reader: 'client' } : { writer: 'client', reader: 'upstream' }
console.log(`${who.writer} → ${who.reader}, the ${who.reader} not reading: ${MiB(sent)} MiB sent, ${MiB(sent - queued)} MiB of it taken off the ${who.writer}'s hands (${MiB(queued)} MiB left in its own queue)`)
console.log(`gateway RSS before ${MiB(before.rss)} MiB, while stalled ${MiB(stalled.rss)} MiB, highest sampled ${MiB(highest)} MiB (+${MiB(highest - before.rss)} MiB), after close ${MiB(after.rss)} MiB; process peak (VmHWM) ${MiB(after.peak)} MiB`)
console.log(`${who.reader} reading again: ${MiB(received)} MiB in ${(drained / 1000).toFixed(1)} s, ${received === sent && inOrder ? 'every message, in order' : 'MESSAGES LOST OR REORDERED'}`)

await gateway.stop()
wss.close()
server.close()
