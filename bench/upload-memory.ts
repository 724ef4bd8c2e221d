// How much memory a large upload costs the gateway process: the real gateway (bench/gateway.ts) in
// its own process, a 100 MB body streamed through it to an upstream that only hashes what arrives,
// and the gateway's resident set read from /proc while it runs. A proxy that buffered the body would
// grow by the body's size.
//
//   node --import tsx bench/upload-memory.ts [--mb 100]
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from 'undici'

const { values: args } = parseArgs({ options: { mb: { type: 'string', default: '100' } } })
const total = Number(args.mb) * 1024 * 1024
const here = dirname(fileURLToPath(import.meta.url))

const upstream = createServer((req, res) => {
  const hash = createHash('sha256')
  let length = 0
  req.on('data', (chunk: Buffer) => { hash.update(chunk); length += chunk.length })
  req.on('end', () => { res.end(JSON.stringify({ length, sha256: hash.digest('hex') })) })
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

const gateway = fork(join(here, 'gateway.ts'), [], { env: { ...process.env, BENCH_GATEWAY: 'real', BENCH_UPSTREAM: upstreamUrl }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
const base = await new Promise<string>((resolve) => gateway.once('message', (m: { url: string }) => { resolve(m.url) }))

/** VmRSS and VmHWM (the peak) of a process, in MB. */
function memory (pid: number): { rss: number, peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

// Sign in as a browser would, then warm the path once so start-up allocations are not counted.
const page = await fetch(`${base}/login`)
const csrf = page.headers.getSetCookie().map((c) => c.split(';', 1)[0]).join('; ')
const token = /name="csrf_token" value="([^"]+)"/.exec(await page.text())![1]!
const signIn = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrf }, body: new URLSearchParams({ username: 'bench', csrf_token: token, next: '/' }) })
const cookie = signIn.headers.getSetCookie().map((c) => c.split(';', 1)[0] ?? '').find((c) => c.startsWith('authgate='))!
await (await request(`${base}/warm`, { method: 'PUT', headers: { cookie }, body: Buffer.alloc(1024 * 1024) })).body.text()

const pid = gateway.pid!
const before = memory(pid)
const block = Buffer.alloc(256 * 1024, 0x61)
async function * body (): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < total; sent += block.length) yield block
}
let highest = before.rss
const sampler = setInterval(() => { highest = Math.max(highest, memory(pid).rss) }, 10)
const started = Date.now()
const response = await request(`${base}/upload`, { method: 'PUT', headers: { cookie, 'content-type': 'application/octet-stream' }, body: Readable.from(body()) })
const answer = await response.body.json() as { length: number }
clearInterval(sampler)
const after = memory(pid)

console.log(`upload of ${args.mb} MB through the gateway in ${((Date.now() - started) / 1000).toFixed(1)} s: status ${response.statusCode}, ${answer.length === total ? 'every byte arrived' : `ONLY ${answer.length} bytes arrived`}`)
console.log(`gateway RSS before ${before.rss.toFixed(1)} MB, highest sampled ${highest.toFixed(1)} MB (+${(highest - before.rss).toFixed(1)} MB), after ${after.rss.toFixed(1)} MB; process peak (VmHWM) ${after.peak.toFixed(1)} MB (was ${before.peak.toFixed(1)} MB)`)

gateway.send({ stop: true })
upstream.close()
