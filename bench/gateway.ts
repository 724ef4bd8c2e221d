// One gateway under test, in its own process (forked by bench/proxy.ts; reports its URL over IPC).
//   BENCH_GATEWAY=real          buildApp from src/app.ts, exactly as main.ts composes it
//   BENCH_GATEWAY=real-rules    the same with ACCESS_RULES: the ten rules of bench/access-rules-fixture.ts
//   BENCH_GATEWAY=stock         bench/variant-app.ts with @fastify/http-proxy's default dispatcher
//   BENCH_GATEWAY=pool:<json>   bench/variant-app.ts with `new Pool(upstream, <json>)`
//   BENCH_GATEWAY=tuned         bench/variant-app.ts with createUpstreamPool (checks the variant tracks real)
// BENCH_UPSTREAM: the upstream URL. BENCH_LOG_LEVEL: a pino level for the real gateway (default:
// no logger, as in the tests; `info` measures what production logging costs — stdout goes to /dev/null).
// SKIP_AUTH_PATHS is /public/ everywhere.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../src/config/index.js'
import { openDatabase } from '../src/db/index.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { buildApp } from '../src/app.js'
import { createLogger } from '../src/logger.js'
import { createUpstreamPool } from '../src/proxy/index.js'
import { Pool } from 'undici'
import { buildVariantApp } from './variant-app.js'
import { TEN_RULES } from './access-rules-fixture.js'

const mode = process.env.BENCH_GATEWAY ?? 'real'
const upstreamUrl = process.env.BENCH_UPSTREAM
if (upstreamUrl === undefined) throw new Error('BENCH_UPSTREAM is not set')
const logLevel = process.env.BENCH_LOG_LEVEL

const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-'))
const config = loadConfig({
  SECRET_KEY: 'bench-secret-key-0123456789abcdefghijklmnopqrs',
  HEADER_SIGNING_SECRET: 'bench-header-signing-secret-0123456789abcdef',
  UPSTREAM_URL: upstreamUrl,
  DATABASE_URL: 'sqlite:./authgate.db',
  SKIP_AUTH_PATHS: '/public/',
  // The load generator is one address standing for many clients: give it all the pool one address
  // may have (at concurrencies above the pool size it meets the per-address limit, 429, by design).
  CLIENT_MAX_CONCURRENT_REQUESTS: '127',
  LOG_LEVEL: logLevel ?? 'silent',
  ...(mode === 'real-rules' ? { ACCESS_RULES: TEN_RULES } : {})
}, { cwd: dir, dotenv: false })
const db = openDatabase(config.databaseUrl, { cwd: dir })
await migrateToLatest(db)
const upstream = config.upstreamUrl!

let app: FastifyInstance
let close: () => Promise<void>
if (mode === 'real' || mode === 'real-rules') {
  const gateway = await buildApp({ config, db, upstream, ...(logLevel !== undefined ? { logger: createLogger(logLevel) } : {}) })
  app = gateway.app
  close = gateway.close
} else {
  let pool: Pool | undefined
  if (mode === 'stock') pool = undefined
  else if (mode === 'tuned') pool = createUpstreamPool(upstream)
  else if (mode.startsWith('pool:')) pool = new Pool(upstream.origin, JSON.parse(mode.slice('pool:'.length)) as Pool.Options)
  else throw new Error(`unknown BENCH_GATEWAY ${mode}`)
  const variant = await buildVariantApp({ config, db, upstream, pool })
  app = variant.app
  close = variant.close
}

await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as AddressInfo
process.send?.({ ready: true, url: `http://127.0.0.1:${port}` })

let stopping = false
async function stop (): Promise<void> {
  if (stopping) return
  stopping = true
  await close()
  await db.close()
  rmSync(dir, { recursive: true, force: true })
  // process.exit (not a kill) so that --cpu-prof writes its profile.
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('message', (message: { stop?: boolean }) => { if (message.stop === true) void stop() })
process.on('disconnect', () => { void stop() })
