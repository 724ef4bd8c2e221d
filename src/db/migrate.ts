import { Migrator, sql, type MigrationResultSet } from 'kysely'
import { migrations } from '../../migrations/index.js'
import type { Db } from './index.js'

/**
 * Apply pending migrations; safe when several instances start at once. On PostgreSQL Kysely's
 * migrator takes an advisory lock (pg_advisory_lock, on a connection of its own, waiting up to an
 * hour): the others wait for it, then find nothing left to do. The migrations run on a pool of their
 * own without DATABASE_STATEMENT_TIMEOUT, which would cut that wait, or a long migration, short. On
 * SQLite its lock is a no-op (it assumes one process), so the whole run happens inside one BEGIN
 * IMMEDIATE transaction: a second process waits for the first (busy_timeout) and then finds nothing
 * left to do.
 */
export async function migrateToLatest (db: Db): Promise<string[]> {
  const provider = { getMigrations: async () => migrations }
  let result: MigrationResultSet
  if (db.dialect === 'sqlite') {
    // Kysely's SQLite driver has a single connection, so these statements and the migrator's share it.
    await sql`begin immediate`.execute(db.kysely)
    try {
      result = await new Migrator({ db: db.kysely, provider, disableTransactions: true }).migrateToLatest()
      await sql`${sql.raw(result.error === undefined ? 'commit' : 'rollback')}`.execute(db.kysely)
    } catch (err) {
      await sql`rollback`.execute(db.kysely)
      throw err
    }
  } else {
    const unbounded = db.forMigrations?.() ?? db
    try {
      result = await new Migrator({ db: unbounded.kysely, provider, ...await migrationTableSchema(unbounded) }).migrateToLatest()
    } finally {
      if (unbounded !== db) await unbounded.close()
    }
  }
  if (result.error !== undefined) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName
    // Before any migration ran (the database unreachable, TLS refused, the lock's wait cancelled):
    // the error itself, with its code, for the caller to explain.
    if (failed === undefined) throw result.error
    throw new Error(`migration ${failed} failed: ${(result.error as Error).message}`)
  }
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

/** Migrations not yet applied (and how many there are), read without changing anything: no lock, no table created. */
export async function pendingMigrations (db: Db): Promise<{ pending: string[], total: number }> {
  const all = await new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations }, ...await migrationTableSchema(db) }).getMigrations()
  return { pending: all.filter((m) => m.executedAt === undefined).map((m) => m.name), total: all.length }
}

/**
 * PostgreSQL: the schema the migrator's own tables are in, named. Without it Kysely looks for them in
 * every schema of the database, so another schema holding a kysely_migration_lock table (another
 * authgate, another Kysely application) makes it skip creating ours and fail.
 */
async function migrationTableSchema (db: Db): Promise<{ migrationTableSchema?: string }> {
  if (db.dialect === 'sqlite') return {}
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db.kysely)
  const schema = rows[0]?.schema
  return typeof schema === 'string' ? { migrationTableSchema: schema } : {}
}
