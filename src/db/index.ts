// Database factory: one Kysely instance on SQLite (embedded default) or PostgreSQL, chosen by URL.
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import SQLite from 'better-sqlite3'
import { createRequire } from 'node:module'
import type pg from 'pg'
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, type DatabaseConnection } from 'kysely'
import type { Database } from './schema.js'
import { guardedDialect } from './unavailable.js'
import { checkSqliteFile, DEFAULT_BUSY_TIMEOUT_MS, openSqlite, type DbLog } from './sqlite.js'
import { maskDatabaseUrl, postgresSettingsFor, type PostgresSettings } from '../config/database.js'

export { DatabaseUnavailableError, isDatabaseUnavailable } from './unavailable.js'
export { SqliteFileError } from './sqlite.js'

export type { Database } from './schema.js'
export type Dialect = 'sqlite' | 'postgres'

export interface Db {
  kysely: Kysely<Database>
  dialect: Dialect
  close: () => Promise<void>
  /**
   * PostgreSQL: another pool, of one connection and without the statement timeout, for migrations (a
   * migration may rightly take longer, and so may the wait for another instance's migration lock).
   * The caller closes it.
   */
  forMigrations?: () => Db
}

export interface OpenOptions {
  cwd?: string
  /** PostgreSQL schema to use (tests give each file its own). */
  schema?: string
  /**
   * For commands that only read: SQLite refuses a file that does not exist instead of creating it
   * (a mistyped path must be reported, not left holding an empty database) and opens it read-only;
   * PostgreSQL sessions are read-only (default_transaction_read_only).
   */
  readOnly?: boolean
  /** SQLite: how long an operation may wait for another connection's write lock in all (ms; default 10 s). */
  busyTimeoutMs?: number
  /** Where the database layer reports what the operator should know (SQLite waiting for a lock). */
  log?: DbLog
  /**
   * How to reach PostgreSQL (the configuration's `postgres`: pool size, timeouts, TLS). Default: the
   * DATABASE_* defaults and the URL's own TLS parameters, read as the gateway reads them.
   */
  postgres?: PostgresSettings
}

// node-postgres is loaded only when DATABASE_URL names PostgreSQL: on SQLite (the default) it would be
// a few megabytes of the gateway's memory for nothing. Synchronous, as openDatabase is.
const require = createRequire(import.meta.url)
const loadPg = (): typeof pg => require('pg') as typeof pg

export class DatabaseMissingError extends Error {
  constructor (readonly file: string) {
    super(`no database at ${file}`)
    this.name = 'DatabaseMissingError'
  }
}

export function openDatabase (url: string, options: OpenOptions = {}): Db {
  if (url.startsWith('sqlite:')) {
    const target = url.slice('sqlite:'.length)
    const file = target === ':memory:' ? target : resolve(options.cwd ?? process.cwd(), target)
    if (options.readOnly === true) {
      if (file === ':memory:' || !existsSync(file)) throw new DatabaseMissingError(file)
      checkSqliteFile(file)
      const sqlite = new SQLite(file, { timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS, readonly: true, fileMustExist: true })
      const kysely = new Kysely<Database>({ dialect: guardedDialect(new SqliteDialect({ database: sqlite })) })
      return { kysely, dialect: 'sqlite', close: async () => { await kysely.destroy() } }
    }
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    const kysely = openSqlite(file, { busyTimeoutMs: options.busyTimeoutMs, log: options.log })
    return { kysely, dialect: 'sqlite', close: async () => { await kysely.destroy() } }
  }
  const settings = options.postgres ?? postgresSettingsFor(url, { cwd: options.cwd })
  const pool = new (loadPg().Pool)(postgresPoolConfig(settings, options.schema))
  // A client losing its connection must not crash the process, idle (the pool's 'error') or checked
  // out (pg emits 'error' on the client as well as failing its query, and the pool listens only
  // while the client is idle): the query's caller gets the error, the pool replaces the client.
  pool.on('error', () => {})
  pool.on('connect', (client) => { client.on('error', () => {}) })
  const readOnly = options.readOnly === true
    ? { onCreateConnection: async (connection: DatabaseConnection) => { await connection.executeQuery(CompiledQuery.raw('set default_transaction_read_only = on')) } }
    : {}
  const kysely = new Kysely<Database>({ dialect: guardedDialect(new PostgresDialect({ pool, ...readOnly })) })
  return {
    kysely,
    dialect: 'postgres',
    close: async () => { await kysely.destroy() },
    forMigrations: () => openDatabase(url, { ...options, readOnly: false, postgres: { ...settings, poolSize: 1, statementTimeoutMs: 0 } })
  }
}

/**
 * node-postgres's pool options for these settings. The timeouts: connectionTimeoutMillis bounds both
 * opening a connection and waiting for a free one of the pool; statement_timeout is sent at each
 * connection's start, so the server cancels any statement that runs longer (no request waits on a
 * stuck query), whatever issued it.
 */
export function postgresPoolConfig (settings: PostgresSettings, schema?: string): pg.PoolConfig {
  const ssl = postgresSsl(settings)
  return {
    connectionString: settings.connectionString,
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    ...(settings.statementTimeoutMs > 0 ? { statement_timeout: settings.statementTimeoutMs } : {}),
    // A connection whose peer vanished (a failover, a dropped NAT entry) is noticed by TCP, not kept.
    keepAlive: true,
    // The name the server's pg_stat_activity shows, unless DATABASE_URL sets application_name.
    fallback_application_name: 'authgate',
    ...(ssl !== undefined ? { ssl } : {}),
    ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {})
  }
}

/**
 * libpq's sslmodes as Node's TLS options: require encrypts without checking the certificate (unless
 * a CA is given: then as verify-ca); verify-ca checks the chain only; verify-full checks the chain
 * and that the certificate names the host. undefined: no sslmode, node-postgres decides (no TLS,
 * unless the PGSSLMODE environment variable asks for it).
 */
export function postgresSsl (settings: Pick<PostgresSettings, 'sslmode' | 'ca' | 'cert' | 'key'>): false | ConnectionOptions | undefined {
  const { sslmode, ca, cert, key } = settings
  if (sslmode === undefined) return undefined
  if (sslmode === 'disable') return false
  const clientCertificate = cert !== undefined && key !== undefined ? { cert, key } : {}
  if (sslmode === 'require' && ca === undefined) return { rejectUnauthorized: false, ...clientCertificate }
  const checked = { rejectUnauthorized: true, ...(ca !== undefined ? { ca } : {}), ...clientCertificate }
  // verify-ca (and require with a CA): the chain is checked, the name is not.
  return sslmode === 'verify-full' ? checked : { ...checked, checkServerIdentity: () => undefined }
}

/**
 * A database error at startup (or in a CLI command) in the operator's terms: what failed, on which
 * database (password masked), and the likely fix for the TLS and timeout failures.
 */
export function describeDatabaseError (err: unknown, url: string, settings?: PostgresSettings): string {
  const e = err as NodeJS.ErrnoException
  const message = e?.message ?? String(err)
  const where = `the database at ${maskDatabaseUrl(url)}`
  if (/does not support SSL/i.test(message)) {
    return `${where} refused TLS (${message}), and DATABASE_URL asks for sslmode=${settings?.sslmode ?? 'require'}: turn ssl on at the server, or use sslmode=disable on a network you trust`
  }
  if (e?.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `${where}: its certificate does not name the host of DATABASE_URL (${message}); connect by a name the certificate holds, or use sslmode=verify-ca`
  }
  if (typeof e?.code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(e.code)) {
    return `${where}: its TLS certificate cannot be verified (${e.code}: ${message}); give the CA that signed it as sslrootcert in DATABASE_URL or DATABASE_CA_FILE`
  }
  if (/timeout/i.test(message) && /connect/i.test(message)) {
    return `${where} did not answer within DATABASE_CONNECT_TIMEOUT (${(settings?.connectTimeoutMs ?? 0) / 1000} s): ${message}`
  }
  return `${where}: ${message}`
}

/** Redact the password in a database URL before it reaches a log line. */
export { maskDatabaseUrl as describeDatabaseUrl } from '../config/database.js'
