// Slow clients against the shared upstream pool, end to end: a real gateway, a real upstream that
// reads bodies, and clients on their own loopback addresses (127.0.0.2 …) that send headers and
// bodies as slowly as an attacker would. One client address must never stall everyone else, and a
// stalled body must free its upstream connection, while slow-but-steady uploads and long responses
// (long-polling) keep working.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { createServer, type IncomingMessage } from 'node:http'
import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { answeredWithin, eventually } from '../support/within.js'
import { logCapture } from '../support/log-capture.js'

/** An upstream that reads every body to its end, answers /longpoll late, and records aborts. */
async function startReadingUpstream (): Promise<{ url: string, inFlight: () => number, aborted: string[], completed: Array<{ url: string, bytes: number, sha256: string }>, close: () => Promise<void> }> {
  let inFlight = 0
  const aborted: string[] = []
  const completed: Array<{ url: string, bytes: number, sha256: string }> = []
  const server = createServer((req: IncomingMessage, res) => {
    inFlight++
    let done = false
    const finish = (): void => { if (!done) { done = true; inFlight-- } }
    const hash = createHash('sha256')
    let bytes = 0
    req.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
    // An upstream that is slow to read: it takes nothing for the first 3 s.
    if ((req.url ?? '').startsWith('/static/slow-reader')) { req.pause(); setTimeout(() => { req.resume() }, 3000) }
    req.on('close', () => { if (!req.complete) { aborted.push(req.url ?? ''); finish() } })
    req.on('end', () => {
      const url = req.url ?? ''
      completed.push({ url, bytes, sha256: hash.digest('hex') })
      const delay = url.startsWith('/longpoll') ? Number(new URL(url, 'http://x').searchParams.get('ms')) : 0
      setTimeout(() => {
        finish()
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ url, bytes, user: req.headers['x-user'] ?? null }))
      }, delay)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    inFlight: () => inFlight,
    aborted,
    completed,
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}

interface RawClient {
  socket: Socket
  /** Resolves with everything the gateway sent once it closes the connection (or `timeoutMs` passes: then undefined). */
  closed: (timeoutMs: number) => Promise<string | undefined>
  /** The status of the response, as soon as its first line arrived (0 if none yet). */
  status: () => number
  received: () => string
}

/** A client on its own TCP connection from `localAddress`, writing `head` (and later bytes) itself. */
async function rawClient (gatewayUrl: string, localAddress: string, head: string): Promise<RawClient> {
  const { port } = new URL(gatewayUrl)
  const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let raw = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { raw += chunk })
  socket.on('error', () => {})
  const closedPromise = new Promise<string>((resolve) => { socket.on('close', () => { resolve(raw) }) })
  socket.write(head)
  return {
    socket,
    closed: async (timeoutMs) => await Promise.race([closedPromise, sleep(timeoutMs).then(() => undefined)]),
    status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0),
    received: () => raw
  }
}

const uploadHead = (path: string, length: number, extra: string[] = []): string =>
  [`POST ${path} HTTP/1.1`, 'Host: gw', 'Content-Type: application/octet-stream', `Content-Length: ${length}`, ...extra, '', ''].join('\r\n')

t.test('130 slow uploads from one address do not stall a signed-in user on another', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  // Body limits at their defaults (30 s, longer than this test waits): the per-address limit alone must keep the pool open.
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', ADMIN_USERNAMES: '' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const session = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  const attackers: RawClient[] = []
  t.teardown(() => { for (const a of attackers) a.socket.destroy() })
  for (let i = 0; i < 130; i++) attackers.push(await rawClient(gw.url, '127.0.0.2', uploadHead(`/static/upload-${i}`, 1_000_000)))
  // One byte every 2 s from each: never idle long, never finishing.
  const drip = setInterval(() => { for (const a of attackers) if (!a.socket.destroyed) a.socket.write('x') }, 2000)
  t.teardown(() => { clearInterval(drip) })
  for (const a of attackers) a.socket.write('x')
  // Everything the attack can take is taken: the upstream holds what got through, the rest was answered.
  const settled = await eventually(() => upstream.inFlight() + attackers.filter((a) => a.status() !== 0).length >= 128, 10_000)
  t.ok(settled, `the attack reached the upstream (in flight ${upstream.inFlight()})`)

  const health = await answeredWithin(http(`${gw.url}/_authgate/healthz`), 10_000)
  t.equal(health?.status, 200, 'healthz answers')
  const answer = await answeredWithin(http(`${gw.url}/whoami`, { headers: { cookie: session } }), 10_000)
  t.equal(answer?.status, 200, 'the signed-in user on another address gets an answer')
  t.equal(answer !== undefined ? JSON.parse(answer.body).user : undefined, 'alice')

  const refused = attackers.filter((a) => a.status() === 429)
  t.ok(upstream.inFlight() < 128, `one address holds only part of the pool (${upstream.inFlight()} in flight)`)
  t.equal(refused.length + upstream.inFlight(), 130, 'every request beyond the per-address limit was refused, none queued')
  const sample = refused[0]?.received() ?? ''
  t.match(sample, /\r\nretry-after: \d+\r\n/i, '429 says when to retry')
  t.match(sample, /too many/i, 'and why, in its body')
  clearInterval(drip)
  for (const a of attackers) a.socket.destroy()
})

t.test('a body that stalls gets 408 and its upstream request is aborted', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const log = logCapture()
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_BODY_IDLE_TIMEOUT: '1', CLIENT_BODY_MIN_RATE: '10' }, { upstream: upstream.url, logger: log.logger })
  t.teardown(gw.close)

  const client = await rawClient(gw.url, '127.0.0.3', uploadHead('/static/stall', 100))
  t.teardown(() => { client.socket.destroy() })
  client.socket.write('0123456789')
  t.ok(await eventually(() => upstream.inFlight() === 1, 5000), 'the upload reached the upstream')
  const raw = await client.closed(10_000)
  t.not(raw, undefined, 'the gateway answered and closed the connection')
  t.match(raw ?? '', /^HTTP\/1\.1 408 /, '408 Request Timeout')
  t.match(raw ?? '', /connection: close/i)
  t.ok(await eventually(() => upstream.aborted.includes('/static/stall'), 5000), 'the upstream saw its request aborted')
  t.equal(upstream.inFlight(), 0, 'nothing is held upstream')
  const lines = log.lines().filter((l) => /request body/i.test(String(l.msg)))
  t.equal(lines.length, 1, 'logged once')
  t.equal(lines[0]?.level, 30, 'at info')
  t.same(log.lines().filter((l) => (l.level as number) >= 40), [], 'no warning or error')
})

t.test('a body that trickles below the minimum rate gets 408', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_BODY_IDLE_TIMEOUT: '1', CLIENT_BODY_MIN_RATE: '100' }, { upstream: upstream.url })
  t.teardown(gw.close)

  // One byte every 200 ms: never idle for 1 s, but 5 bytes/s where 100 are required.
  const client = await rawClient(gw.url, '127.0.0.4', uploadHead('/static/trickle', 10_000))
  const drip = setInterval(() => { if (!client.socket.destroyed) client.socket.write('x') }, 200)
  t.teardown(() => { clearInterval(drip); client.socket.destroy() })
  const raw = await client.closed(10_000)
  t.match(raw ?? '', /^HTTP\/1\.1 408 /, '408 Request Timeout')
  t.ok(await eventually(() => upstream.aborted.includes('/static/trickle'), 5000), 'the upstream saw its request aborted')
})

t.test('a slow but steady upload, pauses included, completes', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_BODY_IDLE_TIMEOUT: '2', CLIENT_BODY_MIN_RATE: '100' }, { upstream: upstream.url })
  t.teardown(gw.close)

  // ~5 s at ~800 bytes/s, with one pause of half the idle limit: far slower than an ordinary
  // upload, still well above the minimum rate.
  const body = Buffer.alloc(3200, 'abcdefgh')
  const client = await rawClient(gw.url, '127.0.0.5', uploadHead('/static/steady', body.length, ['Connection: close']))
  t.teardown(() => { client.socket.destroy() })
  for (let sent = 0; sent < body.length; sent += 200) {
    client.socket.write(body.subarray(sent, sent + 200))
    await sleep(sent === 1600 ? 1000 : 250)
  }
  const raw = await client.closed(10_000)
  t.match(raw ?? '', /^HTTP\/1\.1 200 /)
  const seen = upstream.completed.find((c) => c.url === '/static/steady')
  t.equal(seen?.bytes, body.length, 'the whole body reached the upstream')
  t.equal(seen?.sha256, createHash('sha256').update(body).digest('hex'))
})

t.test('an upstream that reads slowly does not make its client too slow', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_BODY_IDLE_TIMEOUT: '1', CLIENT_BODY_MIN_RATE: '100' }, { upstream: upstream.url })
  t.teardown(gw.close)
  // More than every buffer on the way holds, so the client is stopped by the gateway for 3 s.
  const body = Buffer.alloc(32 * 1024 * 1024, 'y')
  const client = await rawClient(gw.url, '127.0.0.8', uploadHead('/static/slow-reader', body.length, ['Connection: close']))
  t.teardown(() => { client.socket.destroy() })
  client.socket.write(body)
  const raw = await client.closed(30_000)
  t.match(raw ?? '', /^HTTP\/1\.1 200 /, 'answered, not 408')
  t.equal(upstream.completed.find((c) => c.url === '/static/slow-reader')?.bytes, body.length, 'the whole body arrived')
})

t.test('responses may take longer than the body limits: long-polling still works', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({ CLIENT_BODY_IDLE_TIMEOUT: '1', CLIENT_BODY_MIN_RATE: '100', CLIENT_HEADER_TIMEOUT: '1' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const session = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  const poll = await http(`${gw.url}/longpoll?ms=3000`, { headers: { cookie: session } })
  t.equal(poll.status, 200, 'a GET answered after 3 s')
  t.equal(JSON.parse(poll.body).user, 'alice')
  const posted = await http(`${gw.url}/longpoll?ms=3000`, { method: 'POST', headers: { cookie: session, 'content-type': 'text/plain' }, body: 'a finished body' })
  t.equal(posted.status, 200, 'a POST whose body was complete, answered after 3 s')
  t.equal(JSON.parse(posted.body).bytes, 15)
})

t.test('a body refused before it was read leaves its keep-alive connection usable', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_BODY_IDLE_TIMEOUT: '1' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const body = Buffer.alloc(256 * 1024, 'x')
  const client = await rawClient(gw.url, '127.0.0.7', uploadHead('/private', body.length, ['Accept: application/json']))
  t.teardown(() => { client.socket.destroy() })
  client.socket.write(body)
  t.ok(await eventually(() => / 401 /.test(client.received()), 5000), 'no session: 401')
  client.socket.write('GET /static/next HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
  const raw = await client.closed(5000)
  t.match(raw ?? '', /HTTP\/1\.1 401 [\s\S]*HTTP\/1\.1 200 /, 'the next request on the connection is answered')
  t.notOk(upstream.completed.some((c) => c.url === '/private'), 'the refused body never reached the upstream')
})

t.test('request headers must arrive within CLIENT_HEADER_TIMEOUT', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  const log = logCapture()
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_HEADER_TIMEOUT: '1' }, { upstream: upstream.url, logger: log.logger })
  t.teardown(gw.close)

  const client = await rawClient(gw.url, '127.0.0.6', 'GET /static/app.css HTTP/1.1\r\nHost: gw\r\n')
  const drip = setInterval(() => { if (!client.socket.destroyed) client.socket.write('X-Slow: 1\r\n') }, 300)
  t.teardown(() => { clearInterval(drip); client.socket.destroy() })
  const raw = await client.closed(10_000)
  t.match(raw ?? '', /^HTTP\/1\.1 408 /, '408 Request Timeout, then the connection is closed')
  t.equal(upstream.completed.length, 0, 'nothing reached the upstream')
  t.equal(log.lines().filter((l) => /request headers/i.test(String(l.msg)) && l.level === 30).length, 1, 'logged once at info')
})

t.test('the per-address limit is released however a request ends, and IPv6 counts by /64', async (t) => {
  const upstream = await startReadingUpstream()
  t.teardown(upstream.close)
  // Behind a trusted front proxy the limit applies to the client address it reports.
  const gw: TestGateway = await startGateway({ SKIP_AUTH_PATHS: '/static/', CLIENT_MAX_CONCURRENT_REQUESTS: '2', TRUST_PROXY: '127.0.0.1' }, { upstream: upstream.url })
  t.teardown(gw.close)
  const from = (address: string): string[] => [`X-Forwarded-For: ${address}`]
  const clients: RawClient[] = []
  t.teardown(() => { for (const c of clients) c.socket.destroy() })
  const hold = async (address: string, path: string): Promise<RawClient> => {
    const c = await rawClient(gw.url, '127.0.0.1', uploadHead(path, 100, from(address)))
    clients.push(c)
    c.socket.write('x')
    return c
  }
  const tryOnce = async (address: string): Promise<number> =>
    (await http(`${gw.url}/static/ok`, { headers: { 'x-forwarded-for': address } })).status

  const first = await hold('2001:db8:1:2::1', '/static/a')
  await hold('2001:db8:1:2:ffff::9', '/static/b')
  t.ok(await eventually(() => upstream.inFlight() === 2, 5000))
  t.equal(await tryOnce('2001:db8:1:2::77'), 429, 'a third request from the same /64 is refused')
  const page = await http(`${gw.url}/static/page`, { headers: { 'x-forwarded-for': '2001:db8:1:2::78', accept: 'text/html' } })
  t.equal(page.status, 429, 'a browser gets a page')
  t.match(String(page.headers['content-type']), /^text\/html/)
  t.match(String(page.headers['content-security-policy']), /default-src/, 'with the pages\' security headers')
  t.match(page.body, /Too many requests/)
  t.equal(page.headers['retry-after'], '2')
  t.equal(await tryOnce('2001:db8:1:3::1'), 200, 'another /64 is another client')
  t.equal(await tryOnce('198.51.100.7'), 200, 'and so is an IPv4 client')

  first.socket.destroy()
  t.ok(await eventually(() => upstream.inFlight() === 1, 5000), 'an aborted upload frees its upstream request')
  t.equal(await tryOnce('2001:db8:1:2::77'), 200, 'and its slot: a request that finishes')
  t.equal(await tryOnce('2001:db8:1:2::77'), 200, 'frees its slot too')
  await upstream.close()
  // More failures in a row than the limit: each one released its slot, or the last would be a 429.
  const failures = []
  for (let i = 0; i < 3; i++) failures.push(await tryOnce('2001:db8:1:2::77'))
  t.same(failures, [502, 502, 502], 'requests that fail upstream free their slots')
})
