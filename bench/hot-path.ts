// Micro-benchmark of the gateway's own per-request work, in isolation (one process, no sockets):
// what src/ adds to each proxied request, next to what bench/proxy.ts measures end to end.
//   node --import tsx bench/hot-path.ts
import { openSync } from 'node:fs'
import { pino } from 'pino'
import { signIdentity } from '../src/identity/headers.js'
import { upstreamRequestHeaders, clientResponseHeaders } from '../src/proxy/forwarding.js'
import { loggerOptions } from '../src/logger.js'

function measure (name: string, fn: () => unknown, iterations = 200_000): void {
  for (let i = 0; i < 20_000; i++) fn() // warm-up (JIT)
  const samples: number[] = []
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / iterations)
  }
  samples.sort((a, b) => a - b)
  console.log(`${name.padEnd(60)} ${(samples[2]! / 1000).toFixed(2).padStart(7)} µs/op (median of 5)`)
}

const secret = 'bench-header-signing-secret-0123456789abcdef'
const identity = { username: 'bench-user', isAdmin: false, email: 'bench@example.com', fullName: 'Bench User', groups: ['staff', 'time-trackers'] }
// A browser's request as it reaches the proxy (Node lower-cases the names).
const browserHeaders = {
  host: 'tt.example.com',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.5',
  'accept-encoding': 'gzip, deflate, br, zstd',
  connection: 'keep-alive',
  cookie: 'authgate=' + 'A'.repeat(300) + '; authgate_csrf=' + 'b'.repeat(43) + '; tt_session=abc123',
  'upgrade-insecure-requests': '1',
  'sec-fetch-dest': 'document',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-site': 'none'
}
const responseHeaders = { 'content-type': 'text/html; charset=utf-8', 'content-length': '5120', connection: 'keep-alive', 'keep-alive': 'timeout=5', date: new Date().toUTCString(), 'set-cookie': ['tt_session=abc123; Path=/; HttpOnly'] }

console.log(`node ${process.version}`)
measure('signIdentity (HMAC-SHA256, 5 encoded values)', () => signIdentity(identity, secret, 1_700_000_000))
const signed = signIdentity(identity, secret, 1_700_000_000)
measure('upstreamRequestHeaders (11 browser headers)', () => upstreamRequestHeaders(browserHeaders, { identity: signed, forwardedFor: ['127.0.0.1'], proto: 'https', host: 'tt.example.com' }))
measure('clientResponseHeaders (6 headers)', () => clientResponseHeaders(responseHeaders))

// Fastify's two request log lines at LOG_LEVEL=info, through the gateway's logger options, to /dev/null.
const dest = pino.destination({ fd: openSync('/dev/null', 'w'), sync: true })
const req = { method: 'GET', url: '/timesheet?week=12', ip: '127.0.0.1', headers: browserHeaders }
const res = { statusCode: 200 }
const { redact: _redact, ...withoutRedact } = loggerOptions('info')
for (const [name, options] of [['request log lines, src/logger.ts options', loggerOptions('info')], ['request log lines, same without `redact`', withoutRedact]] as const) {
  const root = pino(options, dest)
  const log = root.child({ reqId: 'req-1' })
  measure(name, () => { log.info({ req }, 'incoming request'); log.info({ res, responseTime: 1.234 }, 'request completed') }, 50_000)
  // Fastify also makes one child logger per request (reqId).
  let id = 0
  measure(name + ' + per-request child', () => { const l = root.child({ reqId: `req-${++id}` }); l.info({ req }, 'incoming request'); l.info({ res, responseTime: 1.234 }, 'request completed') }, 50_000)
}
