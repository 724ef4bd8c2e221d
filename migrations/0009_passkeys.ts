// Passkeys (WebAuthn credentials) of local password accounts, and the challenges of the ceremonies
// under way (src/db/passkeys.ts). A challenge is in the database, not in this process's memory, so
// that the options and the answer may reach different replicas; it is consumed by one DELETE whose
// affected rows decide, so two replicas can never both accept it.
import { sql, type Kysely } from 'kysely'
import { isPostgres, types } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const t = types(db)
  const no = isPostgres(db) ? sql`false` : sql`0`
  await db.schema.createTable('passkeys')
    // The credential id (base64url), as the authenticator gave it: unique across every user.
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The COSE public key, base64url.
    .addColumn('public_key', 'text', (c) => c.notNull())
    // The authenticator's signature counter (0: it keeps none); bigint: it is a 32-bit unsigned value.
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    // JSON array of the transports the browser reported (usb, internal, hybrid, ...), a hint only.
    .addColumn('transports', 'text')
    .addColumn('name', 'text', (c) => c.notNull())
    // The user chose it to sign in without a password (else: a second factor only).
    .addColumn('passwordless', t.flag, (c) => c.notNull().defaultTo(no))
    .addColumn('created_at', t.timestamp, (c) => c.notNull())
    .addColumn('last_used_at', t.timestamp)
    .execute()
  await db.schema.createIndex('ix_passkeys_user_id').on('passkeys').column('user_id').execute()

  await db.schema.createTable('webauthn_challenges')
    // The challenge itself (base64url, 32 random bytes): the authenticator signs it, the browser returns it.
    .addColumn('challenge', 'text', (c) => c.primaryKey())
    // register, register-passwordless, sign-in (without a password), second-factor.
    .addColumn('purpose', 'text', (c) => c.notNull())
    // The user it was issued for; null for a sign-in without a password (the credential names the user).
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('cascade'))
    // Milliseconds since the epoch, as the gateway's clock counts them.
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('ix_webauthn_challenges_expires_at').on('webauthn_challenges').column('expires_at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webauthn_challenges').execute()
  await db.schema.dropTable('passkeys').execute()
}
