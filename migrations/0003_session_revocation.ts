// `authgate sessions revoke <user>`: sessions issued before this instant are refused.
import type { Kysely } from 'kysely'
import { types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('sessions_revoked_at', types(db).timestamp).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('sessions_revoked_at').execute()
}
