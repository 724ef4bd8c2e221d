// WORKERS=2 as an operator runs it: the real main.ts, a primary and two workers sharing the port.
// Both workers serve, a session opened on one is good on the other (one database, one secret), a
// killed worker is replaced, one scrape gives the sum of both, and SIGTERM stops them all (exit 0);
// workers that cannot start are not retried for ever: the primary gives up with exit 1.
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer, get } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { cookieHeader, loginLocal } from '../support/http.js'
import { startUpstream } from '../support/upstream.js'

const MAIN = resolve('src/main.ts')
const TSX = import.meta.resolve('tsx')

interface LogLine { pid: number, msg: string, [field: string]: unknown }

/** A GET on a connection of its own: the cluster hands out connections, not requests, in turn. */
async function getOnce (url: string, headers: Record<string, string>): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      let body = ''
      res.on('data', (d) => { body += String(d) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    }).on('error', reject)
  })
}

async function until<T> (what: string, probe: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function gatewayEnv (cwd: string, upstream: string, more: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    WORKERS: '2',
    UPSTREAM_URL: upstream,
    SECRET_KEY: 's'.repeat(48),
    HEADER_SIGNING_SECRET: 'h'.repeat(48),
    DATABASE_URL: `sqlite:${join(cwd, 'a.db')}`,
    LOG_FORMAT: 'json',
    SHUTDOWN_GRACE_PERIOD: '2',
    ...more
  }
}

t.test('WORKERS=2: two workers on one port, one session, one metrics view, replaced when killed, stopped together', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-workers-'))
  const env = gatewayEnv(cwd, upstream.url, { METRICS_PORT: '0' })
  const child = spawn(process.execPath, [`--import=${TSX}`, MAIN], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { out += String(d) })
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => { resolve(code ?? -1) }))
  const lines = (): LogLine[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)

  const base = await until('listening', () => /authgate listening on (http:\/\/[^"\s]+) \(upstream [^)]*, 2 workers\)/.exec(out)?.[1])
  const metricsUrl = await until('metrics listener', () => /metrics on (http:\/\/[^"\s]+\/metrics)/.exec(out)?.[1])
  const workerPids = (): Set<number> => new Set(lines().filter((l) => l.msg.startsWith('Server listening at') && l.listener === undefined).map((l) => l.pid))
  // Each process batches its log lines (up to 100 ms late): the primary's "listening" line can come
  // in before a worker's own, so wait for both workers' lines rather than read them at once.
  const first = await until('both workers\' lines', () => workerPids().size === 2 ? [...workerPids()] : undefined)
  t.equal(first.length, 2, 'two workers listen')
  t.notOk(first.includes(child.pid!), 'the primary does not serve')
  t.equal(lines().filter((l) => l.msg === 'database ready').length, 1, 'migrated once, by the primary')

  const { cookies } = await loginLocal(base, 'alice')
  const cookie = cookieHeader(cookies)
  const proxied = 20
  for (let i = 0; i < proxied; i++) {
    const res = await getOnce(`${base}/app/${i}`, { cookie })
    t.equal(res.status, 200, `request ${i} proxied with the session`)
  }
  const servedBy = new Set(lines().filter((l) => l.msg === 'request' && typeof l.path === 'string' && l.path.startsWith('/app/') && l.status === 200).map((l) => l.pid))
  t.same([...servedBy].sort(), [...first].sort(), 'both workers served signed-in requests: the session opened on one is good on the other')
  t.equal(upstream.received.filter((r) => r.url.startsWith('/app/') && r.headers['x-user'] === 'alice').length, proxied, 'the upstream got alice every time')

  // Every scrape, whichever worker takes it, counts the requests of both.
  for (let i = 0; i < 4; i++) {
    const scrape = await getOnce(metricsUrl, {})
    t.equal(scrape.status, 200)
    const count = Number(/authgate_request_duration_seconds_count\{decision="proxied"\} (\d+)/.exec(scrape.body)?.[1])
    t.equal(count, proxied, `scrape ${i}: the proxied requests of both workers, summed`)
  }

  const victim = first[0]!
  process.kill(victim, 'SIGKILL')
  const replacement = await until('a replacement worker', () => [...workerPids()].find((pid) => !first.includes(pid)))
  t.ok(await until('the primary\'s line', () => /a worker exited: starting another/.test(out) || undefined), 'the primary says it replaced the worker')
  t.ok(alive(child.pid!), 'the primary carries on')
  const afterRestart = await getOnce(`${base}/app/after`, { cookie })
  t.equal(afterRestart.status, 200, 'still serving')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: every worker stopped, the primary exits 0')
  for (const pid of [first[1]!, replacement]) t.notOk(alive(pid), `worker ${pid} is gone`)
  t.equal(lines().filter((l) => l.msg === 'stopped' && l.signal === 'SIGTERM').length, 2, 'each worker stopped gracefully')
})

t.test('workers that fail at start: retried with a backoff, then the primary gives up (exit 1)', async (t) => {
  // The port is taken by another process: every worker fails to listen.
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-workers-fail-'))
  const env = gatewayEnv(cwd, 'http://127.0.0.1:9', { PORT: String((taken.address() as AddressInfo).port) })
  const child = spawn(process.execPath, [`--import=${TSX}`, MAIN], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { out += String(d) })
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => { resolve(c ?? -1) }))
  t.equal(code, 1, 'the primary exits non-zero')
  t.match(out, /already in use/, 'the workers say why')
  t.match(out, /a worker failed to start: trying again/)
  t.match(out, /workers keep failing at start \(5 in a row\): giving up/)
  t.notMatch(out, /authgate listening/)
})
