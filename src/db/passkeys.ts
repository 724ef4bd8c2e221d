// Passkeys and WebAuthn challenges (migrations/0009_passkeys.ts), on either dialect. Every decision
// that two replicas could race on is one statement whose affected rows decide: a challenge is
// consumed by a DELETE (only one caller gets the row), a signature counter moves forward by an
// UPDATE that names the value it read (a replayed assertion loses).
import type { Selectable } from 'kysely'
import type { Db } from './index.js'
import type { PasskeysTable } from './schema.js'

export type ChallengePurpose = 'register' | 'register-passwordless' | 'sign-in' | 'second-factor'

/** A passkey as registration stores it. */
export interface NewPasskey {
  /** The credential id, base64url. */
  id: string
  userId: number
  /** The COSE public key. */
  publicKey: Uint8Array<ArrayBuffer>
  counter: number
  transports: string[]
  name: string
  passwordless: boolean
}

export interface Passkey extends NewPasskey {
  createdAt: Date
  lastUsedAt: Date | null
}

/** Passkeys one user may hold: enough for every device they own, not a table anyone can fill. */
export const MAX_PASSKEYS_PER_USER = 20

const toDate = (value: Date | string): Date => value instanceof Date ? value : new Date(value)

function parseTransports (value: string | null): string[] {
  if (value === null) return []
  try {
    const parsed: unknown = JSON.parse(value)
    return Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === 'string') : []
  } catch {
    return []
  }
}

function toPasskey (row: Selectable<PasskeysTable>): Passkey {
  return {
    id: row.id,
    userId: Number(row.user_id),
    publicKey: new Uint8Array(Buffer.from(row.public_key, 'base64url')),
    counter: Number(row.counter),
    transports: parseTransports(row.transports),
    name: row.name,
    passwordless: Boolean(row.passwordless),
    createdAt: toDate(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : toDate(row.last_used_at)
  }
}

export class PasskeyRepository {
  constructor (private readonly db: Db) {}

  /** The user's passkeys, oldest first. */
  async listForUser (userId: number): Promise<Passkey[]> {
    const rows = await this.db.kysely.selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute()
    return rows.map(toPasskey)
  }

  async findById (id: string): Promise<Passkey | undefined> {
    const row = await this.db.kysely.selectFrom('passkeys').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toPasskey(row)
  }

  /**
   * Store a new passkey. false: that credential id is already stored (for this user or another),
   * or the user holds MAX_PASSKEYS_PER_USER already; nothing written then.
   */
  async add (passkey: NewPasskey, now: Date): Promise<boolean> {
    return await this.db.kysely.transaction().execute(async (trx) => {
      const count = await trx.selectFrom('passkeys').select((eb) => eb.fn.countAll<number | string>().as('n')).where('user_id', '=', passkey.userId).executeTakeFirstOrThrow()
      if (Number(count.n) >= MAX_PASSKEYS_PER_USER) return false
      const result = await trx.insertInto('passkeys').values({
        id: passkey.id,
        user_id: passkey.userId,
        public_key: Buffer.from(passkey.publicKey).toString('base64url'),
        counter: passkey.counter,
        transports: passkey.transports.length > 0 ? JSON.stringify(passkey.transports) : null,
        name: passkey.name,
        passwordless: passkey.passwordless ? 1 : 0,
        created_at: now.toISOString()
      }).onConflict((conflict) => conflict.column('id').doNothing()).executeTakeFirst()
      return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1
    })
  }

  /**
   * Record a use: the counter moves from `from` to `to` and the time is kept. false: another
   * request moved the counter first (the same assertion, or a clone's, raced this one): refuse it.
   * An authenticator without a counter (0 and 0) always succeeds, as WebAuthn allows.
   */
  async recordUse (id: string, from: number, to: number, now: Date): Promise<boolean> {
    const result = await this.db.kysely.updateTable('passkeys')
      .set({ counter: to, last_used_at: now.toISOString() })
      .where('id', '=', id)
      .where('counter', '=', from)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** Remove one of the user's passkeys; false when the user has no such passkey (someone else's included). */
  async remove (userId: number, id: string): Promise<Passkey | undefined> {
    const row = await this.db.kysely.deleteFrom('passkeys').where('id', '=', id).where('user_id', '=', userId).returningAll().executeTakeFirst()
    return row === undefined ? undefined : toPasskey(row)
  }

  /** A challenge issued now, valid until `expiresAt` (ms), for one purpose (and user, when known). */
  async createChallenge (challenge: string, purpose: ChallengePurpose, userId: number | null, expiresAt: number): Promise<void> {
    await this.db.kysely.insertInto('webauthn_challenges').values({ challenge, purpose, user_id: userId, expires_at: expiresAt }).execute()
  }

  /**
   * Use a challenge: true only for the one caller whose DELETE removed it, and only when it was
   * issued for one of `purposes`, for this user (null: issued for no user), and is unexpired at
   * `now`. Returns the purpose it was issued for, or undefined.
   */
  async consumeChallenge (challenge: string, purposes: ChallengePurpose[], userId: number | null, now: number): Promise<ChallengePurpose | undefined> {
    let query = this.db.kysely.deleteFrom('webauthn_challenges')
      .where('challenge', '=', challenge)
      .where('purpose', 'in', purposes)
      .where('expires_at', '>', now)
    query = userId === null ? query.where('user_id', 'is', null) : query.where('user_id', '=', userId)
    const row = await query.returning('purpose').executeTakeFirst()
    return row?.purpose as ChallengePurpose | undefined
  }

  /** Delete the challenges expired at `now` (ms); returns how many. */
  async deleteExpiredChallenges (now: number): Promise<number> {
    const result = await this.db.kysely.deleteFrom('webauthn_challenges').where('expires_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
