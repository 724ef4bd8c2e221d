// As the seed application did when it added SSO: email (indexed) and the OIDC identity link.
import type { Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('email', 'text').execute()
  await db.schema.alterTable('users').addColumn('oidc_issuer', 'text').execute()
  await db.schema.alterTable('users').addColumn('oidc_sub', 'text').execute()
  await db.schema.createIndex('ix_users_email').on('users').column('email').execute()
  // A unique index (not a table constraint) because SQLite cannot add constraints to a table.
  await db.schema.createIndex('uq_users_oidc_identity').on('users').columns(['oidc_issuer', 'oidc_sub']).unique().execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('uq_users_oidc_identity').execute()
  await db.schema.dropIndex('ix_users_email').execute()
  await db.schema.alterTable('users').dropColumn('oidc_sub').execute()
  await db.schema.alterTable('users').dropColumn('oidc_issuer').execute()
  await db.schema.alterTable('users').dropColumn('email').execute()
}
