import { PostgresAdapter, type Kysely } from 'kysely'

export function isPostgres (db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** Column types that differ between the two dialects. */
export function types (db: Kysely<any>): { timestamp: 'timestamptz' | 'text', flag: 'boolean' | 'integer' } {
  return isPostgres(db) ? { timestamp: 'timestamptz', flag: 'boolean' } : { timestamp: 'text', flag: 'integer' }
}
