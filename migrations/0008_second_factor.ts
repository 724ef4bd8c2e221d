// Second factors for local password accounts (LOCAL_MFA): a user's TOTP authenticator, their
// recovery codes, and the short-lived tokens that bind the second sign-in step to the first.
// Every secret here is stored so that reading the table does not sign anyone in: the TOTP secret
// sealed, and recovery codes hashed, under keys derived from the deployment's second-factor data
// key (src/auth/mfa/data-key.ts), itself stored sealed under SECRET_KEY in second_factor_key (a
// rotation re-seals that one row); step tokens as hashes. Single use is a column checked in the UPDATE itself (src/db/second-factors.ts),
// so replicas sharing the database agree on which code or token was used.
import { sql, type Kysely } from 'kysely'
import { types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const t = types(db)
  // One row (singleton = 1): the data key, sealed under SECRET_KEY. The primary key is what makes
  // replicas starting at once agree on one key (insert-if-absent, then read).
  await db.schema.createTable('second_factor_key')
    .addColumn('singleton', 'integer', (c) => c.primaryKey().check(sql`singleton = 1`))
    .addColumn('sealed_key', 'text', (c) => c.notNull())
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .addColumn('updated_at', t.timestamp, (c) => c.notNull())
    .execute()

  await db.schema.createTable('user_totp')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('secret', 'text', (c) => c.notNull())
    // Null while the enrolment is pending (the user has not yet typed a code from the new authenticator).
    .addColumn('confirmed_at', t.timestamp)
    // The RFC 6238 time step of the last code accepted: a code of that step or an earlier one is refused.
    .addColumn('last_step', 'bigint')
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .execute()

  await db.schema.createTable('recovery_codes')
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .addColumn('used_at', t.timestamp)
    .addPrimaryKeyConstraint('pk_recovery_codes', ['user_id', 'code_hash'])
    .execute()

  await db.schema.createTable('mfa_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('next', 'text', (c) => c.notNull())
    // Milliseconds since the epoch, as the gateway's clock counts them (as login_throttle.reset_at).
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', t.timestamp)
    .execute()
  await db.schema.createIndex('ix_mfa_tokens_expires_at').on('mfa_tokens').column('expires_at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mfa_tokens').execute()
  await db.schema.dropTable('recovery_codes').execute()
  await db.schema.dropTable('user_totp').execute()
  await db.schema.dropTable('second_factor_key').execute()
}
