// The second factors of local password accounts (LOCAL_MFA): TOTP authenticators, recovery codes and
// the second sign-in step's tokens. Whatever must be used once (a TOTP time step, a recovery code, a
// step token) is used by one UPDATE whose WHERE says it was not used yet, judged by the rows it
// changed: two replicas, or two requests, offering the same code cannot both succeed.
import { sql } from 'kysely'
import type { Db } from './index.js'

export interface TotpRecord {
  userId: number
  /** Sealed under a key derived from the second-factor data key (src/auth/mfa/data-key.ts). */
  sealedSecret: string
  /** Null: an enrolment still pending (no code confirmed yet). */
  confirmedAt: Date | null
  lastStep: number | null
}

/** What the account page shows of a user's second factors. */
export interface SecondFactorSummary {
  totp: 'none' | 'pending' | 'confirmed'
  recoveryCodesLeft: number
  /** Passkeys registered (src/db/passkeys.ts): each is a second factor too. */
  passkeys: number
}

/** A second-step token's row, when it is still usable. */
export interface MfaTokenRecord {
  userId: number
  next: string
}

const toDate = (value: Date | string): Date => value instanceof Date ? value : new Date(value)

export class SecondFactorRepository {
  constructor (private readonly db: Db) {}

  /** The data key as stored (sealed under SECRET_KEY), or undefined before the first start with LOCAL_MFA on. */
  async sealedDataKey (): Promise<string | undefined> {
    const row = await this.db.kysely.selectFrom('second_factor_key').select('sealed_key').where('singleton', '=', 1).executeTakeFirst()
    return row?.sealed_key
  }

  /** Store the data key unless one is there already: true when this call's went in (replicas starting at once: one wins). */
  async insertDataKeyIfAbsent (sealedKey: string, at: Date): Promise<boolean> {
    const row = await this.db.kysely.insertInto('second_factor_key')
      .values({ singleton: 1, sealed_key: sealedKey, created_at: at.toISOString(), updated_at: at.toISOString() })
      .onConflict((oc) => oc.column('singleton').doNothing())
      .returning('singleton')
      .executeTakeFirst()
    return row !== undefined
  }

  /** The same data key sealed anew (a rotation), if the stored value is still `expected`: whether this call's write went in. */
  async replaceDataKey (expected: string, sealedKey: string, at: Date): Promise<boolean> {
    const result = await this.db.kysely.updateTable('second_factor_key').set({ sealed_key: sealedKey, updated_at: at.toISOString() })
      .where('singleton', '=', 1).where('sealed_key', '=', expected).executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /**
   * A new data key in place of `expected` (one no configured SECRET_KEY opens), only while no TOTP
   * secret (pending or not) or recovery code depends on it, checked in the same statement.
   */
  async replaceUnusedDataKey (expected: string, sealedKey: string, at: Date): Promise<boolean> {
    const result = await this.db.kysely.updateTable('second_factor_key').set({ sealed_key: sealedKey, updated_at: at.toISOString() })
      .where('singleton', '=', 1).where('sealed_key', '=', expected)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('user_totp').select('user_id'))))
      .where((eb) => eb.not(eb.exists(eb.selectFrom('recovery_codes').select('user_id'))))
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** Whether any TOTP secret or recovery code is stored (sealed or hashed under the data key). */
  async hasSealedSecondFactors (): Promise<boolean> {
    const totp = await this.db.kysely.selectFrom('user_totp').select('user_id').limit(1).executeTakeFirst()
    if (totp !== undefined) return true
    const code = await this.db.kysely.selectFrom('recovery_codes').select('user_id').limit(1).executeTakeFirst()
    return code !== undefined
  }

  async totpOf (userId: number): Promise<TotpRecord | undefined> {
    const row = await this.db.kysely.selectFrom('user_totp').selectAll().where('user_id', '=', userId).executeTakeFirst()
    if (row === undefined) return undefined
    return {
      userId: Number(row.user_id),
      sealedSecret: row.secret,
      confirmedAt: row.confirmed_at === null ? null : toDate(row.confirmed_at),
      lastStep: row.last_step === null ? null : Number(row.last_step)
    }
  }

  /**
   * Start (or restart) an enrolment with a new sealed secret. A confirmed authenticator is never
   * replaced this way (false): it is removed first, with a current code.
   */
  async beginTotp (userId: number, sealedSecret: string, at: Date): Promise<boolean> {
    const row = await this.db.kysely.insertInto('user_totp')
      .values({ user_id: userId, secret: sealedSecret, confirmed_at: null, last_step: null, created_at: at.toISOString() })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ secret: sealedSecret, created_at: at.toISOString(), last_step: null })
        .where('user_totp.confirmed_at', 'is', null))
      .returning('user_id')
      .executeTakeFirst()
    return row !== undefined
  }

  /**
   * Confirm a pending enrolment with the time step of the code the user typed, and store the
   * recovery codes' hashes (the old ones, if any, go), in one transaction. False: no pending
   * enrolment (confirmed meanwhile by another request, or removed).
   */
  async confirmTotp (userId: number, step: number, recoveryCodeHashes: string[], at: Date): Promise<boolean> {
    return await this.db.kysely.transaction().execute(async (trx) => {
      const result = await trx.updateTable('user_totp').set({ confirmed_at: at.toISOString(), last_step: step })
        .where('user_id', '=', userId).where('confirmed_at', 'is', null).executeTakeFirst()
      if (Number(result.numUpdatedRows) !== 1) return false
      await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
      await trx.insertInto('recovery_codes').values(recoveryCodeHashes.map((hash) => ({ user_id: userId, code_hash: hash, created_at: at.toISOString(), used_at: null }))).execute()
      return true
    })
  }

  /**
   * Accept a TOTP code of `step`: true once per step and user, whichever replica asks; a code of the
   * step last accepted, or an earlier one, is refused (false).
   */
  async useTotpStep (userId: number, step: number): Promise<boolean> {
    const result = await this.db.kysely.updateTable('user_totp').set({ last_step: step })
      .where('user_id', '=', userId).where('confirmed_at', 'is not', null)
      .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', step)]))
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** The hashes of the user's recovery codes not used yet. */
  async unusedRecoveryCodeHashes (userId: number): Promise<string[]> {
    const rows = await this.db.kysely.selectFrom('recovery_codes').select('code_hash').where('user_id', '=', userId).where('used_at', 'is', null).execute()
    return rows.map((r) => r.code_hash)
  }

  /** Use one recovery code (by its hash): true the first time only. */
  async useRecoveryCode (userId: number, codeHash: string, at: Date): Promise<boolean> {
    const result = await this.db.kysely.updateTable('recovery_codes').set({ used_at: at.toISOString() })
      .where('user_id', '=', userId).where('code_hash', '=', codeHash).where('used_at', 'is', null)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** A new set of recovery codes replaces the old one (used or not). */
  async replaceRecoveryCodes (userId: number, codeHashes: string[], at: Date): Promise<void> {
    await this.db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
      await trx.insertInto('recovery_codes').values(codeHashes.map((hash) => ({ user_id: userId, code_hash: hash, created_at: at.toISOString(), used_at: null }))).execute()
    })
  }

  async summaryOf (userId: number): Promise<SecondFactorSummary> {
    const totp = await this.db.kysely.selectFrom('user_totp').select('confirmed_at').where('user_id', '=', userId).executeTakeFirst()
    const left = await this.db.kysely.selectFrom('recovery_codes').select(sql<number | string>`count(*)`.as('n'))
      .where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirst()
    const passkeys = await this.db.kysely.selectFrom('passkeys').select(sql<number | string>`count(*)`.as('n')).where('user_id', '=', userId).executeTakeFirst()
    return {
      totp: totp === undefined ? 'none' : totp.confirmed_at === null ? 'pending' : 'confirmed',
      recoveryCodesLeft: Number(left?.n ?? 0),
      passkeys: Number(passkeys?.n ?? 0)
    }
  }

  /** Whether the user has a second factor the sign-in must ask for: a confirmed authenticator app, or a passkey. */
  async hasConfirmedFactor (userId: number): Promise<boolean> {
    const totp = await this.db.kysely.selectFrom('user_totp').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst()
    if (totp !== undefined) return true
    const passkey = await this.db.kysely.selectFrom('passkeys').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst()
    return passkey !== undefined
  }

  /**
   * Remove every second factor of the user (TOTP, pending or not, recovery codes, passkeys, and the
   * second-step tokens and WebAuthn challenges under way), in one transaction. The one place that knows them all: `authgate users mfa-reset` and
   * the account page use it. Returns whether the user had any.
   */
  async removeAllOf (userId: number): Promise<boolean> {
    return await this.db.kysely.transaction().execute(async (trx) => {
      const totp = await trx.deleteFrom('user_totp').where('user_id', '=', userId).executeTakeFirst()
      const codes = await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).executeTakeFirst()
      const passkeys = await trx.deleteFrom('passkeys').where('user_id', '=', userId).executeTakeFirst()
      await trx.deleteFrom('mfa_tokens').where('user_id', '=', userId).execute()
      await trx.deleteFrom('webauthn_challenges').where('user_id', '=', userId).execute()
      return Number(totp.numDeletedRows) + Number(codes.numDeletedRows) + Number(passkeys.numDeletedRows) > 0
    })
  }

  /** Remove the TOTP authenticator and the recovery codes that go with it (not other factors). */
  async removeTotp (userId: number): Promise<void> {
    await this.db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('user_totp').where('user_id', '=', userId).execute()
      await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
    })
  }

  async createMfaToken (tokenHash: string, userId: number, next: string, expiresAt: number): Promise<void> {
    await this.db.kysely.insertInto('mfa_tokens').values({ token_hash: tokenHash, user_id: userId, next, expires_at: expiresAt, used_at: null }).execute()
  }

  /** A token still usable at `now` (not used, not expired), without using it. */
  async findMfaToken (tokenHash: string, now: number): Promise<MfaTokenRecord | undefined> {
    const row = await this.db.kysely.selectFrom('mfa_tokens').select(['user_id', 'next'])
      .where('token_hash', '=', tokenHash).where('used_at', 'is', null).where('expires_at', '>', now).executeTakeFirst()
    return row === undefined ? undefined : { userId: Number(row.user_id), next: row.next }
  }

  /** Use the token: true the first time only, and only before it expires. */
  async useMfaToken (tokenHash: string, now: number): Promise<boolean> {
    const result = await this.db.kysely.updateTable('mfa_tokens').set({ used_at: new Date(now).toISOString() })
      .where('token_hash', '=', tokenHash).where('used_at', 'is', null).where('expires_at', '>', now).executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** Delete the tokens expired before `now` (the session clean-up calls it). */
  async deleteExpiredMfaTokens (now: number): Promise<number> {
    const result = await this.db.kysely.deleteFrom('mfa_tokens').where('expires_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
