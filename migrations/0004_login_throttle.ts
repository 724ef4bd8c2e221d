// Failed sign-in counters (src/auth/local/throttle.ts), shared by every replica and kept across
// restarts. Rows expire with their window and are deleted by the gateway (src/db/login-throttle.ts).
import type { Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.createTable('login_throttle')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    // Milliseconds since the epoch, as the gateway's clock counts them (bigint on both dialects).
    .addColumn('reset_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('ix_login_throttle_reset_at').on('login_throttle').column('reset_at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('login_throttle').execute()
}
