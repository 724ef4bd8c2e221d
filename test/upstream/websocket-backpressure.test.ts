// WebSocket backpressure through the real gateway to a real ws upstream: a side that stops reading
// slows down the side that writes to it, as TCP would, instead of growing the gateway's memory; once
// it reads again every message arrives, intact and in order. Both directions. (What this costs or
// saves in megabytes is measured by bench/websocket-backpressure.ts, not asserted here.)
import t from 'tap'
import WebSocket from 'ws'
import { startGateway } from '../support/gateway.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, loginLocal } from '../support/http.js'
import { WS_HIGH_WATER_MARK } from '../../src/proxy/websocket-flow.js'
import { within } from '../support/within.js'

const upstream = await startWsUpstream()
const gateway = await startGateway({}, { upstream: upstream.url })
const wsBase = gateway.url.replace(/^http/, 'ws')
t.teardown(async () => { await gateway.close(); await upstream.close() })
const cookie = cookieHeader((await loginLocal(gateway.url, 'alice')).cookies)

/**
 * Larger than one 64 KiB socket read, so that when the gateway stops reading, what it had already
 * read cannot hold a second whole message: its queue then stays within the mark plus one message.
 */
const MESSAGE = 100_000
/** The writer's own queue this deep means nothing on the way is taking its messages any more. */
const BACKED_UP = 4 * 1024 * 1024
/** Far more than the loopback's socket buffers and the gateway's high-water mark hold together. */
const LIMIT = 96 * 1024 * 1024
/** Generous bound for delivering everything once the reader reads again. */
const BOUND_MS = 60_000

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
const until = async (condition: () => boolean): Promise<void> => { while (!condition()) await tick() }

/** Message number `seq`: its number, then its low byte repeated, so a mix-up or a cut shows. */
function numbered (seq: number): Buffer {
  const message = Buffer.alloc(MESSAGE, seq & 0xff)
  message.writeUInt32BE(seq, 0)
  return message
}

/** Sends numbered messages until the writer's own queue backs up, or LIMIT bytes went; how many. */
async function flood (writer: WebSocket): Promise<number> {
  let seq = 0
  while (writer.bufferedAmount < BACKED_UP && seq * MESSAGE < LIMIT) {
    writer.send(numbered(seq++))
    // Gateway, upstream and client share this process: let the gateway forward between messages.
    await tick()
  }
  return seq
}

/** Resolves once `count` messages arrived; rejects at the first one out of order or damaged. */
async function receive (reader: WebSocket, count: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let expected = 0
    reader.on('message', (data: Buffer) => {
      if (!data.equals(numbered(expected))) {
        reject(new Error(`message ${expected} lost, reordered or damaged (got ${data.length} bytes numbered ${data.length >= 4 ? data.readUInt32BE(0) : '?'})`))
        return
      }
      if (++expected === count) resolve()
    })
  })
}

/** Opens a client socket through the gateway and returns it with the upstream's side of it. */
async function pair (path: string): Promise<{ client: WebSocket, upstreamSide: WebSocket }> {
  const before = new Set(upstream.sockets)
  const client = new WebSocket(wsBase + path, { headers: { cookie } })
  await within(new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) }), BOUND_MS, 'client open')
  // The gateway dials the upstream after answering the client.
  let upstreamSide: WebSocket | undefined
  await within(until(() => (upstreamSide = [...upstream.sockets].find((s) => !before.has(s))) !== undefined), BOUND_MS, 'upstream side open')
  return { client, upstreamSide: upstreamSide! }
}

t.test('an upstream flooding a client that stops reading is slowed down, and nothing is lost', async (t) => {
  const { client, upstreamSide } = await pair('/sink/down')
  // The client's TCP socket is no longer read: what reaches it stays in the kernel's buffers.
  client.pause()
  const sent = await flood(upstreamSide)
  t.ok(upstreamSide.bufferedAmount >= BACKED_UP, `the upstream's writes back up (${(sent * MESSAGE / 1048576).toFixed(1)} MiB sent, ${(upstreamSide.bufferedAmount / 1048576).toFixed(1)} MiB still queued in the upstream)`)
  t.ok(gateway.webSocketFlow.bufferedBytes <= WS_HIGH_WATER_MARK + MESSAGE, `the gateway holds at most its high-water mark plus one message (${gateway.webSocketFlow.bufferedBytes} bytes)`)
  const delivered = receive(client, sent)
  client.resume()
  await within(delivered, BOUND_MS, `all ${sent} messages delivered`)
  t.pass(`all ${sent} messages arrived intact and in order`)
  await within(until(() => gateway.webSocketFlow.bufferedBytes === 0), BOUND_MS, 'the gateway\'s queue empties')
  t.pass('the gateway holds nothing once the client has read everything')
  client.close()
})

t.test('a client flooding an upstream that stops reading is slowed down, and nothing is lost', async (t) => {
  const { client, upstreamSide } = await pair('/sink/up')
  upstreamSide.pause()
  const sent = await flood(client)
  t.ok(client.bufferedAmount >= BACKED_UP, `the client's writes back up (${(sent * MESSAGE / 1048576).toFixed(1)} MiB sent, ${(client.bufferedAmount / 1048576).toFixed(1)} MiB still queued in the client)`)
  t.ok(gateway.webSocketFlow.bufferedBytes <= WS_HIGH_WATER_MARK + MESSAGE, `the gateway holds at most its high-water mark plus one message (${gateway.webSocketFlow.bufferedBytes} bytes)`)
  const delivered = receive(upstreamSide, sent)
  upstreamSide.resume()
  await within(delivered, BOUND_MS, `all ${sent} messages delivered`)
  t.pass(`all ${sent} messages arrived intact and in order`)
  await within(until(() => gateway.webSocketFlow.bufferedBytes === 0), BOUND_MS, 'the gateway\'s queue empties')
  t.pass('the gateway holds nothing once the upstream has read everything')
  client.close()
})

t.test('a client flooding before the upstream has answered the handshake is not read ahead of it', async (t) => {
  const before = new Set(upstream.sockets)
  const held = upstream.held.length
  const client = new WebSocket(wsBase + '/sink/held', { headers: { cookie } })
  await within(new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) }), BOUND_MS, 'client open')
  await within(until(() => upstream.held.length > held), BOUND_MS, 'the gateway dials the upstream')
  // The plugin would queue each message until the upstream answers (for up to 30 s).
  const sent = await flood(client)
  t.ok(client.bufferedAmount >= BACKED_UP, `the client's writes back up (${(sent * MESSAGE / 1048576).toFixed(1)} MiB sent, ${(client.bufferedAmount / 1048576).toFixed(1)} MiB still queued in the client)`)
  upstream.held.pop()!()
  const upstreamSide = [...upstream.sockets].find((s) => !before.has(s))
  if (upstreamSide === undefined) throw new Error('the upstream accepted no socket')
  await within(receive(upstreamSide, sent), BOUND_MS, `all ${sent} messages delivered`)
  t.pass(`all ${sent} messages arrived intact and in order`)
  client.close()
})

t.test('pings flooding an upstream that stops reading are held back like messages', async (t) => {
  const { client, upstreamSide } = await pair('/sink/pings')
  upstreamSide.pause()
  const payload = Buffer.alloc(125, 0x70)
  let pings = 0
  // A few pings per read: ws itself ends a socket that sends more than 60 before it could answer them.
  while (client.readyState === client.OPEN && client.bufferedAmount < BACKED_UP && pings * payload.length < LIMIT) {
    for (let i = 0; i < 16; i++, pings++) client.ping(payload)
    await tick()
  }
  t.ok(client.bufferedAmount >= BACKED_UP, `the client's writes back up (${pings} pings sent, ${(client.bufferedAmount / 1048576).toFixed(1)} MiB still queued in the client)`)
  t.ok(gateway.webSocketFlow.bufferedBytes <= WS_HIGH_WATER_MARK + 64 * 1024, `the gateway holds at most its high-water mark plus one socket read (${gateway.webSocketFlow.bufferedBytes} bytes)`)
  upstreamSide.terminate()
  client.terminate()
})
