// The database failing for reasons of its own (unreachable, restarting, full, locked, read-only after
// a failover) as opposed to a query that is wrong: the first is a moment, answered with 503 and
// "try again"; the second is a bug, answered with 500. Every query goes through a driver that turns
// the first kind into DatabaseUnavailableError (guardedDialect), so the request path can tell them
// apart by class, not by guessing at messages there.
import type { DatabaseConnection, Dialect, Driver, QueryCompiler, QueryResult, TransactionSettings, CompiledQuery } from 'kysely'

/** The database cannot serve this now; `reason` is one line for logs and readiness (no data, no password). */
export class DatabaseUnavailableError extends Error {
  /** The driver's code of the error it wraps (`57014`, `SQLITE_BUSY`, `ECONNREFUSED`…), for logs and callers that look. */
  readonly code: string | undefined

  constructor (readonly reason: string, options?: ErrorOptions) {
    super(`database unavailable: ${reason}`, options)
    this.name = 'DatabaseUnavailableError'
    const code = (options?.cause as { code?: unknown } | undefined)?.code
    this.code = typeof code === 'string' ? code : undefined
  }
}

/** Whether `err` (or an error it wraps) says the database is unavailable. */
export function isDatabaseUnavailable (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof DatabaseUnavailableError) return true
  }
  return false
}

// Node's socket errors on the way to PostgreSQL.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'])
// pg's own errors for a connection that went away or never came (they carry no code).
const PG_CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Query read timeout|Connection ended)/
/**
 * SQLSTATEs that are the server's state, not the query's: 08 connection exceptions, 53 insufficient
 * resources (disk full, out of memory, too many connections), 57P0x shutting down or starting up,
 * 57014 cancelled by statement_timeout, 55P03 lock_timeout, 58 I/O errors, 25006 a read-only
 * transaction (a standby after a failover), 40001/40P01 serialization failure and deadlock (retry),
 * 28 the credentials refused (a rotated password), 3D000 the database gone.
 */
const PG_UNAVAILABLE_STATES = /^(08|53|57P0|57014$|55P03$|58|25006$|40001$|40P01$|28|3D000$)/
// SQLite result codes of the same kind: locked, full, I/O, corrupt, unwritable.
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|CORRUPT|NOTADB|PROTOCOL|NOMEM|NOLFS)/

/** The availability problem `err` is (one line), or undefined when it is not one (a query error, a bug). */
export function unavailability (err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined
  if (err instanceof DatabaseUnavailableError) return err.reason
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return describe(err, code)
    if (SQLITE_UNAVAILABLE.test(code)) return `${err.message} (${code})`
    // A SQLSTATE is five characters; only pg's DatabaseError has one.
    if (/^[0-9A-Z]{5}$/.test(code) && PG_UNAVAILABLE_STATES.test(code)) return `${err.message} (SQLSTATE ${code})`
  }
  if (PG_CONNECTION_MESSAGES.test(err.message)) return err.message
  // Happy-eyeballs connects fail with an AggregateError whose message is empty.
  if (err instanceof AggregateError) {
    const inner = err.errors.map(unavailability)
    if (inner.length > 0 && inner.every((r) => r !== undefined)) return [...new Set(inner)].join('; ')
  }
  return undefined
}

function describe (err: Error, code: string): string {
  if (err.message !== '') return err.message.includes(code) ? err.message : `${err.message} (${code})`
  const inner = err instanceof AggregateError ? err.errors.map((e: unknown) => e instanceof Error ? e.message : String(e)).filter((m) => m !== '') : []
  return inner.length > 0 ? [...new Set(inner)].join('; ') : code
}

/** `err` as DatabaseUnavailableError when it is an availability problem, else `err` itself. */
export function classifyDatabaseError (err: unknown): unknown {
  const reason = unavailability(err)
  return reason !== undefined && !(err instanceof DatabaseUnavailableError) ? new DatabaseUnavailableError(reason, { cause: err }) : err
}

async function guarded<T> (work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    throw classifyDatabaseError(err)
  }
}

/** What a dialect's driver needs changed for one database kind (SQLite: see sqlite.ts). */
export interface DriverTuning {
  /** Run one statement; `run` is the driver's own. Default: as is. */
  execute?: <T>(run: () => Promise<T>) => Promise<T>
  /** How a transaction starts on `connection` (run through `execute`); default: the driver's own. */
  begin?: (connection: DatabaseConnection) => Promise<void>
  /** false: the database already ended the transaction (SQLite does after SQLITE_FULL): no rollback to send. */
  inTransaction?: () => boolean
}

class GuardedConnection implements DatabaseConnection {
  constructor (readonly inner: DatabaseConnection, private readonly tuning: DriverTuning) {}

  async executeQuery<R> (compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const run = async (): Promise<QueryResult<R>> => await this.inner.executeQuery<R>(compiledQuery)
    return await guarded(async () => await (this.tuning.execute !== undefined ? this.tuning.execute(run) : run()))
  }

  async * streamQuery<R> (compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield * this.inner.streamQuery<R>(compiledQuery, chunkSize)
    } catch (err) {
      throw classifyDatabaseError(err)
    }
  }
}

const innerOf = (connection: DatabaseConnection): DatabaseConnection => connection instanceof GuardedConnection ? connection.inner : connection

class GuardedDriver implements Driver {
  constructor (private readonly inner: Driver, private readonly tuning: DriverTuning) {}

  async init (): Promise<void> { await guarded(async () => { await this.inner.init() }) }

  async acquireConnection (): Promise<DatabaseConnection> {
    return new GuardedConnection(await guarded(async () => await this.inner.acquireConnection()), this.tuning)
  }

  async beginTransaction (connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const begin = this.tuning.begin
    if (begin !== undefined) await begin(connection)
    else await guarded(async () => { await this.inner.beginTransaction(innerOf(connection), settings) })
  }

  async commitTransaction (connection: DatabaseConnection): Promise<void> {
    await guarded(async () => { await this.inner.commitTransaction(innerOf(connection)) })
  }

  async rollbackTransaction (connection: DatabaseConnection): Promise<void> {
    if (this.tuning.inTransaction?.() === false) return
    try {
      await this.inner.rollbackTransaction(innerOf(connection))
    } catch (err) {
      // A connection that died mid-transaction cannot roll back, and needs not: the server drops
      // the transaction with it (and the driver discards the connection). Throwing here would hide
      // the error that made the transaction fail behind "cannot roll back".
      if (unavailability(err) === undefined) throw err
    }
  }

  async savepoint (connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await guarded(async () => { await this.inner.savepoint?.(innerOf(connection), name, compileQuery) })
  }

  async rollbackToSavepoint (connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await guarded(async () => { await this.inner.rollbackToSavepoint?.(innerOf(connection), name, compileQuery) })
  }

  async releaseSavepoint (connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await guarded(async () => { await this.inner.releaseSavepoint?.(innerOf(connection), name, compileQuery) })
  }

  async releaseConnection (connection: DatabaseConnection): Promise<void> {
    await this.inner.releaseConnection(innerOf(connection))
  }

  async destroy (): Promise<void> { await this.inner.destroy() }
}

/** `dialect` with every driver error that is an availability problem turned into DatabaseUnavailableError. */
export function guardedDialect (dialect: Dialect, tuning: DriverTuning = {}): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => new GuardedDriver(dialect.createDriver(), tuning),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db)
  }
}
