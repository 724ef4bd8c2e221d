// SQLite as the gateway uses it: one file, WAL, one connection per process (Kysely's), and other
// processes (a second gateway, the CLI, a backup) on the same file at the same time.
//
// Locks: better-sqlite3 is synchronous, so SQLite's own busy handler would wait for another
// process's write lock with the whole event loop stopped, every proxied request with it. It waits
// a few milliseconds only; longer waits are retries with a timer in between (the event loop runs),
// up to `busyTimeoutMs` (default 10 s), then the operation fails as DatabaseUnavailableError (503).
// Transactions begin IMMEDIATE: they take the write lock first, so they wait for it like a single
// statement does, instead of failing halfway with SQLITE_BUSY_SNAPSHOT.
//
// Damage: an existing file is checked (quick_check) through a read-only connection before anything
// may write to it; a file that is not a database, or is corrupt or truncated, is refused untouched.
import { existsSync, rmSync, statSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import { CompiledQuery, Kysely, SqliteDialect } from 'kysely'
import type { Database } from './schema.js'
import { guardedDialect } from './unavailable.js'

/** Where a wait for another process's lock is reported (pino's signature; main.ts passes the logger). */
export interface DbLog { warn: (fields: object, message: string) => void }

export interface SqliteOptions {
  /** How long an operation may wait for another connection's lock in all (ms). */
  busyTimeoutMs?: number
  log?: DbLog
}

export const DEFAULT_BUSY_TIMEOUT_MS = 10_000
/** SQLite's own (blocking) wait per attempt: a lock held that briefly costs no timer round trip. */
const BLOCKING_WAIT_MS = 20
const RETRY_DELAY_MAX_MS = 100
/** At most one "waiting for a lock" line per this many ms: contention must not flood the log. */
const BUSY_LOG_INTERVAL_MS = 5000

/** A SQLite file that cannot be used: not a database, corrupt, truncated; named, with SQLite's words. */
export class SqliteFileError extends Error {
  constructor (readonly file: string, readonly detail: string, options?: ErrorOptions) {
    super(`${file} is not a usable SQLite database: ${detail}`, options)
    this.name = 'SqliteFileError'
  }
}

/**
 * Check an existing database file without writing to it: SQLite's header, then every page
 * (quick_check: the b-trees and their records, not the indexes' contents). A file of zero bytes is
 * a new, empty database to SQLite, and is left to become one.
 * @throws SqliteFileError when it is not a usable database (the file is left as it was).
 */
export function checkSqliteFile (file: string): void {
  if (!existsSync(file) || statSync(file).size === 0) return
  // A read-only connection to a WAL database leaves empty -wal and -shm files it cannot remove: remove
  // the ones this check created when the file turns out to be unusable (a usable one reuses them).
  const created = ['-wal', '-shm'].filter((suffix) => !existsSync(file + suffix))
  let problem: string | undefined
  let cause: unknown
  let reader: SQLite.Database | undefined
  try {
    reader = new SQLite(file, { readonly: true, fileMustExist: true, timeout: DEFAULT_BUSY_TIMEOUT_MS })
    const result = reader.pragma('quick_check(1)', { simple: true })
    if (result !== 'ok') problem = `corrupt (quick_check: ${String(result).replace(/\s+/g, ' ').trim().slice(0, 200)})`
  } catch (err) {
    const code = (err as { code?: unknown }).code
    // Not a verdict on the file (permissions, a lock held too long, I/O): said as such, with the file.
    if (typeof code !== 'string' || !/^SQLITE_(NOTADB|CORRUPT)/.test(code)) throw withFile(file, err)
    cause = err
    problem = `${(err as Error).message} (${code})`
  } finally {
    reader?.close()
  }
  if (problem === undefined) return
  for (const suffix of created) {
    const side = file + suffix
    if (existsSync(side) && (suffix === '-shm' || statSync(side).size === 0)) rmSync(side, { force: true })
  }
  throw new SqliteFileError(file, problem, { cause })
}

/** SQLite's errors do not name the file: this one does (the code kept, for callers that look). */
function withFile (file: string, err: unknown): Error {
  const code = (err as { code?: unknown }).code
  const wrapped = new Error(`${file}: ${(err as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`, { cause: err })
  if (typeof code === 'string') Object.assign(wrapped, { code })
  return wrapped
}

export function openSqlite (file: string, options: SqliteOptions = {}): Kysely<Database> {
  if (file !== ':memory:') checkSqliteFile(file)
  const budget = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS
  let sqlite: SQLite.Database
  try {
    // Opening waits in SQLite's own handler (nothing else runs yet); queries afterwards wait the short way.
    sqlite = new SQLite(file, { timeout: budget })
    // WAL lets readers proceed during a write; the write lock is what other processes wait for.
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('foreign_keys = ON')
    sqlite.pragma(`busy_timeout = ${Math.min(BLOCKING_WAIT_MS, budget)}`)
  } catch (err) {
    throw withFile(file, err)
  }
  let lastBusyLog = -Infinity

  const execute = async <T>(run: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    let delay = 5
    for (;;) {
      try {
        return await run()
      } catch (err) {
        // Within a transaction the statement cannot be tried alone again; the caller's rollback follows.
        const busy = /^SQLITE_BUSY/.test(String((err as { code?: unknown }).code)) && !sqlite.inTransaction
        const waited = performance.now() - started
        if (!busy || waited >= budget) throw err
        if (performance.now() - lastBusyLog >= BUSY_LOG_INTERVAL_MS) {
          lastBusyLog = performance.now()
          options.log?.warn({ file, waitSeconds: budget / 1000 }, 'SQLite database is locked by another connection; waiting for it')
        }
        await sleep(Math.min(delay, budget - waited))
        delay = Math.min(delay * 2, RETRY_DELAY_MAX_MS)
      }
    }
  }

  const dialect = guardedDialect(new SqliteDialect({ database: sqlite }), {
    execute,
    begin: async (connection) => { await connection.executeQuery(CompiledQuery.raw('begin immediate')) },
    // After SQLITE_FULL or an I/O error SQLite may have rolled the transaction back itself.
    inTransaction: () => sqlite.inTransaction
  })
  return new Kysely<Database>({ dialect })
}
