// Starts the real gateway (buildApp, the composition root) on an ephemeral loopback port, with its
// own temporary directory and, on PostgreSQL, its own schema, so test files can run in parallel.
// TEST_DATABASE=postgres (`npm run test:postgres`) puts every gateway that is not given a database
// on a fresh PostgreSQL schema of TEST_DATABASE_URL instead of a SQLite file, dropped at close.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import { loadConfig, type Config, type Env } from '../../src/config/index.js'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { buildApp, type Gateway } from '../../src/app.js'
import type { Clock } from '../../src/clock.js'

export const SECRET_KEY = 'test-secret-key-0123456789abcdefghijklmnop'
export const HEADER_SIGNING_SECRET = 'test-header-signing-secret-0123456789abcdef'

export interface TestGateway extends Gateway {
  url: string
  /** With METRICS_PORT set: the metrics listener (on its own ephemeral loopback port, whatever METRICS_PORT says). */
  metricsUrl: string | undefined
  config: Config
  db: Db
  dir: string
}

export interface StartOptions {
  /** Upstream URL (default: UPSTREAM_URL from env). */
  upstream?: string
  /** Open this database instead of a fresh one (a SQLite file in the temp dir, or a PostgreSQL schema: TEST_DATABASE). */
  db?: Db
  revocationRefreshMs?: number
  /** A logger to capture the gateway's log lines (default: none). */
  logger?: FastifyBaseLogger
  /** The gateway's clock (default: the system clock); test/support/clock.ts has one to move by hand. */
  clock?: Clock
  /** AppOptions.oidcRateLimitAddresses: the cap on addresses OIDC_RATE_LIMIT tracks (default 10,000). */
  oidcRateLimitAddresses?: number
}

export async function startGateway (env: Env = {}, options: StartOptions = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-test-'))
  // A test that names its database (DATABASE_URL, or a Db) keeps it; the others follow TEST_DATABASE.
  const schema = options.db === undefined && env.DATABASE_URL === undefined && TEST_DATABASE === 'postgres' ? await createPostgresSchema() : undefined
  const config = loadConfig({
    SECRET_KEY,
    HEADER_SIGNING_SECRET,
    UPSTREAM_URL: options.upstream ?? 'http://127.0.0.1:9',
    DATABASE_URL: schema?.url ?? 'sqlite:./authgate.db',
    LOG_LEVEL: 'silent',
    // The grace period the tests were written with (the default, 20 s, would make a gateway closed
    // with streams open take that long in teardown); shutdown tests set their own.
    SHUTDOWN_GRACE_PERIOD: '5',
    ...env
  }, { cwd: dir, dotenv: false })
  const db = options.db ?? openDatabase(config.databaseUrl, { cwd: dir, postgres: config.postgres, ...(schema !== undefined ? { schema: schema.schema } : {}) })
  await migrateToLatest(db)
  const gateway = await buildApp({ config, db, upstream: config.upstreamUrl!, revocationRefreshMs: options.revocationRefreshMs, ...(options.logger !== undefined ? { logger: options.logger } : {}), ...(options.clock !== undefined ? { clock: options.clock } : {}), ...(options.oidcRateLimitAddresses !== undefined ? { oidcRateLimitAddresses: options.oidcRateLimitAddresses } : {}) })
  await gateway.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = gateway.app.server.address() as AddressInfo
  await gateway.metricsApp?.listen({ port: 0, host: '127.0.0.1' })
  const metricsPort = (gateway.metricsApp?.server.address() as AddressInfo | null | undefined)?.port
  return {
    ...gateway,
    url: `http://127.0.0.1:${port}`,
    metricsUrl: metricsPort !== undefined ? `http://127.0.0.1:${metricsPort}` : undefined,
    config,
    db,
    dir,
    close: async () => {
      await gateway.close()
      if (options.db === undefined) await db.close()
      await schema?.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** PostgreSQL for tests: TEST_DATABASE_URL, or undefined (tests then skip with a notice). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL

/**
 * Where the gateways of the tests keep their data: `sqlite` (default), or `postgres` with
 * TEST_DATABASE=postgres (then TEST_DATABASE_URL is required). Anything else is a mistake, not SQLite.
 */
export const TEST_DATABASE = testDatabaseKind(process.env.TEST_DATABASE)

function testDatabaseKind (value: string | undefined): 'sqlite' | 'postgres' {
  if (value === undefined || value === '' || value === 'sqlite') return 'sqlite'
  if (value !== 'postgres') throw new Error(`TEST_DATABASE=${value}: use sqlite (the default) or postgres`)
  if (TEST_DATABASE_URL === undefined) throw new Error('TEST_DATABASE=postgres needs TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)')
  return 'postgres'
}

export interface TestDatabase {
  /** A DATABASE_URL that reaches it from another process too (the CLI, a gateway process). */
  url: string
  open: () => Db
  drop: () => Promise<void>
}

/**
 * A database for a test to share between gateways, its own queries and the CLI: a SQLite file in
 * `dir`, or with TEST_DATABASE=postgres a fresh PostgreSQL schema.
 */
export async function createTestDatabase (dir: string): Promise<TestDatabase> {
  if (TEST_DATABASE === 'postgres') {
    const { schemaUrl, open, drop } = await createPostgresSchema()
    return { url: schemaUrl, open, drop }
  }
  const url = `sqlite:${join(dir, 'authgate.db')}`
  return { url, open: () => openDatabase(url), drop: async () => {} }
}

/** A fresh schema on the test PostgreSQL, dropped by `drop()`. */
export async function createPostgresSchema (): Promise<{ url: string, schemaUrl: string, schema: string, open: () => Db, drop: () => Promise<void> }> {
  if (TEST_DATABASE_URL === undefined) throw new Error('TEST_DATABASE_URL is not set')
  const schema = 'authgate_test_' + randomBytes(6).toString('hex')
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await admin.connect()
  await admin.query(`create schema ${schema}`)
  await admin.end()
  return {
    url: TEST_DATABASE_URL,
    schemaUrl: withSearchPath(TEST_DATABASE_URL, schema),
    schema,
    open: () => openDatabase(TEST_DATABASE_URL, { schema }),
    drop: async () => {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL })
      await c.connect()
      await c.query(`drop schema if exists ${schema} cascade`)
      await c.end()
    }
  }
}

/** The URL with `options=-c search_path=<schema>` (libpq's, which node-postgres reads too). */
function withSearchPath (url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`
}
