// Fallback load generator, used by bench/proxy.ts only when `wrk` is not installed: N keep-alive
// connections (an undici Pool, no pipelining), each sending the next request as soon as the last
// response ended, for a fixed time. Prints one JSON line. Being JavaScript on the same machine it
// costs more CPU per request than wrk, so its figures are lower: compare ratios, not absolutes.
//   node --import tsx bench/loadgen.ts <url> <connections> <seconds> [headers-json]
import { printLoadResult } from './load-result.js'
import { Pool } from 'undici'

const [url, connectionsArg, secondsArg, headersArg] = process.argv.slice(2)
if (url === undefined || connectionsArg === undefined || secondsArg === undefined) {
  process.stderr.write('usage: loadgen.ts <url> <connections> <seconds> [headers-json]\n')
  process.exit(2)
}
const connections = Number(connectionsArg)
const seconds = Number(secondsArg)
const headers = headersArg !== undefined ? JSON.parse(headersArg) as Record<string, string> : {}
const target = new URL(url)
const pool = new Pool(target.origin, { connections, pipelining: 1 })
const path = target.pathname + target.search

const latencies: number[] = []
let non2xx = 0
let errors = 0
const end = performance.now() + seconds * 1000
const started = performance.now()

async function loop (): Promise<void> {
  while (performance.now() < end) {
    const t0 = performance.now()
    try {
      const { statusCode, body } = await pool.request({ path, method: 'GET', headers })
      await body.dump()
      if (statusCode < 200 || statusCode >= 400) non2xx++
      latencies.push(performance.now() - t0)
    } catch {
      errors++
    }
  }
}

await Promise.all(Array.from({ length: connections }, async () => { await loop() }))
const elapsed = (performance.now() - started) / 1000
await pool.close()
printLoadResult(latencies, elapsed, { non2xx, errors })
