// The base user table, as the seed application (TimeTracker) started.
import { sql, type Kysely } from 'kysely'
import { isPostgres, types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const t = types(db)
  const yes = isPostgres(db) ? sql`true` : sql`1`
  const no = isPostgres(db) ? sql`false` : sql`0`
  await db.schema.createTable('users')
    .addColumn('id', isPostgres(db) ? 'serial' : 'integer', (c) => isPostgres(db) ? c.primaryKey() : c.primaryKey().autoIncrement())
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('full_name', 'text')
    .addColumn('is_admin', t.flag, (c) => c.notNull().defaultTo(no))
    .addColumn('is_active', t.flag, (c) => c.notNull().defaultTo(yes))
    .addColumn('password_hash', 'text')
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .addColumn('last_login_at', t.timestamp)
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('users').execute()
}
