// SSO sessions that follow the IdP (src/auth/oidc/revalidation.ts): the session's refresh token,
// encrypted (src/session/refresh-token-cipher.ts; never the plaintext, never in the cookie), when it
// was last re-validated, a claim so that one replica at a time refreshes it, and the identity the
// last re-validation found with its version (the cookie keeps the sign-in's identity).
import type { Kysely } from 'kysely'
import { types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const t = types(db)
  await db.schema.alterTable('sessions').addColumn('refresh_token', 'text').execute()
  await db.schema.alterTable('sessions').addColumn('validated_at', t.timestamp).execute()
  await db.schema.alterTable('sessions').addColumn('refreshing_until', t.timestamp).execute()
  await db.schema.alterTable('sessions').addColumn('identity', 'text').execute()
  await db.schema.alterTable('sessions').addColumn('identity_version', 'integer', (c) => c.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('sessions').addColumn('identity_changed_at', t.timestamp).execute()
  // Every replica reads the identities changed since its last read (src/session/identities.ts).
  await db.schema.createIndex('ix_sessions_identity_changed_at').on('sessions').column('identity_changed_at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('ix_sessions_identity_changed_at').execute()
  for (const column of ['identity_changed_at', 'identity_version', 'identity', 'refreshing_until', 'validated_at', 'refresh_token']) {
    await db.schema.alterTable('sessions').dropColumn(column).execute()
  }
}
