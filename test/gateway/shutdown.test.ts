// SIGTERM as Kubernetes or `docker stop` sends it, to the real process (src/main.ts): no new
// connections, what is in progress finishes within SHUTDOWN_GRACE_PERIOD (a slow request, a
// WebSocket still in use), what outlasts it is cut (a slower request, a WebSocket left open gets
// 1001), and the process exits 0 soon after the grace period.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { nodeArgs } from '../support/compiled.js'

const MAIN = resolve('src/main.ts')
const GRACE_SECONDS = 2

/** /slow?ms=N answers after N ms; upgrades anywhere: an echo WebSocket. */
async function startSlowUpstream (): Promise<{ url: string, seen: IncomingHttpHeaders[], close: () => Promise<void> }> {
  const seen: IncomingHttpHeaders[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers)
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? '0')
    setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }).end(`answered after ${ms} ms`) }, ms)
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => { ws.on('message', (data) => { ws.send(data) }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      for (const ws of wss.clients) ws.terminate()
      server.closeAllConnections()
      await new Promise<void>((resolve) => { wss.close(); server.close(() => { resolve() }) })
    }
  }
}

async function startGatewayProcess (env: Record<string, string>): Promise<{ child: ChildProcess, output: () => string, exited: Promise<{ code: number | null, at: number }> }> {
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-shutdown-'))
  const child = spawn(process.execPath, await nodeArgs(MAIN), { cwd, env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d) => { out += String(d) })
  child.stderr!.on('data', (d) => { out += String(d) })
  const exited = new Promise<{ code: number | null, at: number }>((resolve) => child.on('exit', (code) => { resolve({ code, at: Date.now() }) }))
  return { child, output: () => out, exited }
}

async function listeningUrl (output: () => string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const url = /authgate listening on (http:\/\/[^"\s]+)/.exec(output())?.[1]
    if (url !== undefined) return url
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the gateway did not start:\n${output()}`)
}

async function openSocket (url: string, cookie: string): Promise<WebSocket> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/socket', { headers: { cookie } })
  await once(ws, 'open')
  await roundTrip(ws, 'hello')
  return ws
}

async function roundTrip (ws: WebSocket, message: string): Promise<string> {
  const answer = once(ws, 'message')
  ws.send(message)
  return String((await answer)[0])
}

t.test(`SIGTERM: in-progress work finishes within SHUTDOWN_GRACE_PERIOD=${GRACE_SECONDS}, the rest is cut, exit 0`, async (t) => {
  const upstream = await startSlowUpstream()
  t.teardown(() => upstream.close())
  const gateway = await startGatewayProcess({ UPSTREAM_URL: upstream.url, SHUTDOWN_GRACE_PERIOD: String(GRACE_SECONDS) })
  t.teardown(() => { gateway.child.kill('SIGKILL') })
  const url = await listeningUrl(gateway.output)
  const cookie = cookieHeader((await loginLocal(url, 'alice')).cookies)

  const withinGrace = request(`${url}/slow?ms=1000`, { headers: { cookie } }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }))
  const beyondGrace = request(`${url}/slow?ms=8000`, { headers: { cookie } }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }), (err: Error) => err)
  const inUse = await openSocket(url, cookie)
  const leftOpen = await openSocket(url, cookie)
  const leftOpenClosed = once(leftOpen, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), at: Date.now() }))
  for (let i = 0; i < 100 && upstream.seen.filter((h) => h['x-user'] === 'alice').length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20))

  const sent = Date.now()
  gateway.child.kill('SIGTERM')
  for (let i = 0; i < 100 && !gateway.output().includes('shutting down'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  await new Promise((resolve) => setTimeout(resolve, 100))

  const refused = await new Promise<string>((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1', () => { socket.destroy(); resolve('connected') })
    socket.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? err.message) })
  })
  t.equal(refused, 'ECONNREFUSED', 'no new connections once SIGTERM arrived')
  t.equal(await roundTrip(inUse, 'still there?'), 'still there?', 'a WebSocket in use keeps working during the grace period')
  inUse.close(1000, 'done')
  const [inUseCode] = await once(inUse, 'close') as [number]
  t.equal(inUseCode, 1000, 'and ends the way its client chose')

  t.same(await withinGrace, { status: 200, body: 'answered after 1000 ms' }, 'a request that finishes within the grace period gets its whole answer')
  const cut = await beyondGrace
  t.ok(cut instanceof Error, `a request that outlasts it is cut (${cut instanceof Error ? cut.message : JSON.stringify(cut)})`)
  const closed = await leftOpenClosed
  t.same({ code: closed.code, reason: closed.reason }, { code: 1001, reason: 'server shutting down' }, 'a WebSocket still open at the end: 1001, going away')
  t.ok(closed.at - sent >= GRACE_SECONDS * 1000 - 100, `not before the grace period ended (${closed.at - sent} ms)`)

  const { code, at } = await gateway.exited
  t.equal(code, 0, 'exit status 0')
  t.ok(at - sent < (GRACE_SECONDS + 3) * 1000, `exited ${at - sent} ms after SIGTERM, soon after the grace period`)
  t.match(gateway.output(), /shutting down: no new connections/)
  t.match(gateway.output(), /"graceSeconds":2/)
  t.match(gateway.output(), /"msg":"stopped"/)
})

t.test('SIGTERM with nothing in progress: exits at once, 0', async (t) => {
  const upstream = await startSlowUpstream()
  t.teardown(() => upstream.close())
  const gateway = await startGatewayProcess({ UPSTREAM_URL: upstream.url })
  t.teardown(() => { gateway.child.kill('SIGKILL') })
  const url = await listeningUrl(gateway.output)
  // A browser's keep-alive connection, idle: it does not hold the stop up.
  t.equal((await http(url + '/_authgate/healthz')).status, 200)
  const sent = Date.now()
  gateway.child.kill('SIGTERM')
  const { code, at } = await gateway.exited
  t.equal(code, 0)
  t.ok(at - sent < 2000, `exited ${at - sent} ms after SIGTERM, without waiting for the default 20 s grace period`)
})
