// IdP-initiated logout (back-channel and front-channel): each session remembers the IdP session it
// came from (the OIDC issuer and the ID token's `sid`), and the logout tokens already used are kept
// (issuer + jti, unique) until they would be refused as stale anyway, so that a replayed logout token
// is refused by every replica.
import type { Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  // Both nullable: local sessions, providers that send no `sid`, and sessions from before this migration.
  await db.schema.alterTable('sessions').addColumn('oidc_issuer', 'text').execute()
  await db.schema.alterTable('sessions').addColumn('idp_session_id', 'text').execute()
  await db.schema.createIndex('ix_sessions_idp_session').on('sessions').columns(['oidc_issuer', 'idp_session_id']).execute()

  await db.schema.createTable('logout_token_ids')
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    // Milliseconds since the epoch, as in login_throttle (bigint on both dialects).
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    // The constraint that refuses a replay, whichever replica the token reaches.
    .addPrimaryKeyConstraint('pk_logout_token_ids', ['issuer', 'jti'])
    .execute()
  await db.schema.createIndex('ix_logout_token_ids_expires_at').on('logout_token_ids').column('expires_at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('logout_token_ids').execute()
  await db.schema.dropIndex('ix_sessions_idp_session').execute()
  await db.schema.alterTable('sessions').dropColumn('idp_session_id').execute()
  await db.schema.alterTable('sessions').dropColumn('oidc_issuer').execute()
}
