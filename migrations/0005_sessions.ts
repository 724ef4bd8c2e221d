// One server-side record per session (logout ends it on every replica), and the deployment's own
// random id, mixed into the cookie keys so that a cookie is valid in this deployment only.
import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const t = types(db)
  await db.schema.createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('login_method', 'text', (c) => c.notNull())
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .addColumn('expires_at', t.timestamp, (c) => c.notNull())
    .addColumn('ended_at', t.timestamp)
    .execute()
  await db.schema.createIndex('ix_sessions_user_id').on('sessions').column('user_id').execute()
  // The revocation list reads the ended sessions; the clean-up deletes the expired ones.
  await db.schema.createIndex('ix_sessions_ended_at').on('sessions').column('ended_at').execute()
  await db.schema.createIndex('ix_sessions_expires_at').on('sessions').column('expires_at').execute()

  // Exactly one row: the primary key `singleton` can only be 1, so a second insert fails. Migrations
  // run under a lock (see src/db/migrate.ts), so instances starting together create it once.
  await db.schema.createTable('deployment')
    .addColumn('singleton', 'integer', (c) => c.primaryKey().check(sql`singleton = 1`))
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .execute()
  const now = new Date().toISOString()
  await db.insertInto('deployment').values({ singleton: 1, id: randomBytes(32).toString('base64url'), created_at: now }).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('deployment').execute()
  await db.schema.dropTable('sessions').execute()
}
