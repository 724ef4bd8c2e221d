// How much memory a large upload costs the gateway process: the gateway as production runs it
// (node dist/src/main.js, bench/production-gateway.ts; built first when dist/ is older than src/), a 100 MB body streamed through it to an upstream that only hashes what arrives,
// and the gateway's resident set read from /proc while it runs. A proxy that buffered the body would
// grow by the body's size.
//
//   node --import tsx bench/upload-memory.ts [--mb 100]
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { freePort } from './processes.js'
import { ensureBuilt, signIn, startGateway } from './production-gateway.js'

const { values: args } = parseArgs({ options: { mb: { type: 'string', default: '100' } } })
const total = Number(args.mb) * 1024 * 1024

const upstream = createServer((req, res) => {
  const hash = createHash('sha256')
  let length = 0
  req.on('data', (chunk: Buffer) => { hash.update(chunk); length += chunk.length })
  req.on('end', () => { res.end(JSON.stringify({ length, sha256: hash.digest('hex') })) })
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

ensureBuilt('auto')
const gateway = await startGateway({ port: await freePort(), upstreamUrl })
const base = gateway.url

/** VmRSS and VmHWM (the peak) of a process, in MB. */
function memory (pid: number): { rss: number, peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

// Sign in as a browser would, then warm the path once so start-up allocations are not counted.
const cookie = await signIn(base, 'bench')
await (await request(`${base}/warm`, { method: 'PUT', headers: { cookie }, body: Buffer.alloc(1024 * 1024) })).body.text()

const pid = gateway.pid
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

await gateway.stop()
upstream.close()
