// Database factory: one Kysely instance on SQLite (embedded default) or PostgreSQL, chosen by URL.
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, type DatabaseConnection } from 'kysely'
import type { Database } from './schema.js'
import { guardedDialect } from './unavailable.js'
import { checkSqliteFile, DEFAULT_BUSY_TIMEOUT_MS, openSqlite, type DbLog } from './sqlite.js'

export { DatabaseUnavailableError, isDatabaseUnavailable } from './unavailable.js'
export { SqliteFileError } from './sqlite.js'

export type { Database } from './schema.js'
export type Dialect = 'sqlite' | 'postgres'

export interface Db {
  kysely: Kysely<Database>
  dialect: Dialect
  close: () => Promise<void>
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
}

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
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    ...(options.schema !== undefined ? { options: `-c search_path=${options.schema}` } : {})
  })
  // A client losing its connection must not crash the process, idle (the pool's 'error') or checked
  // out (pg emits 'error' on the client as well as failing its query, and the pool listens only
  // while the client is idle): the query's caller gets the error, the pool replaces the client.
  pool.on('error', () => {})
  pool.on('connect', (client) => { client.on('error', () => {}) })
  const readOnly = options.readOnly === true
    ? { onCreateConnection: async (connection: DatabaseConnection) => { await connection.executeQuery(CompiledQuery.raw('set default_transaction_read_only = on')) } }
    : {}
  const kysely = new Kysely<Database>({ dialect: guardedDialect(new PostgresDialect({ pool, ...readOnly })) })
  return { kysely, dialect: 'postgres', close: async () => { await kysely.destroy() } }
}

/** Redact the password in a database URL before it reaches a log line. */
export { maskDatabaseUrl as describeDatabaseUrl } from '../config/database.js'
