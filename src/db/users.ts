// The user store: every query the gateway and the CLI make on the users table, on either dialect.
import type { Selectable, Updateable } from 'kysely'
import type { Db } from './index.js'
import type { UsersTable } from './schema.js'
import { checkUsername } from './username.js'

export interface User {
  id: number
  username: string
  fullName: string | null
  email: string | null
  isAdmin: boolean
  isActive: boolean
  passwordHash: string | null
  oidcIssuer: string | null
  oidcSub: string | null
  createdAt: Date
  lastLoginAt: Date | null
  sessionsRevokedAt: Date | null
}

export interface NewUser {
  username: string
  isAdmin?: boolean
  passwordHash?: string | null
  fullName?: string | null
  email?: string | null
  oidcIssuer?: string | null
  oidcSub?: string | null
}

const flag = (value: boolean): number => value ? 1 : 0
const toDate = (value: Date | string): Date => value instanceof Date ? value : new Date(value)
const toDateOrNull = (value: Date | string | null): Date | null => value === null ? null : toDate(value)

export function toUser (row: Selectable<UsersTable>): User {
  return {
    id: Number(row.id),
    username: row.username,
    fullName: row.full_name,
    email: row.email,
    isAdmin: Boolean(row.is_admin),
    isActive: Boolean(row.is_active),
    passwordHash: row.password_hash,
    oidcIssuer: row.oidc_issuer,
    oidcSub: row.oidc_sub,
    createdAt: toDate(row.created_at),
    lastLoginAt: toDateOrNull(row.last_login_at),
    sessionsRevokedAt: toDateOrNull(row.sessions_revoked_at)
  }
}

/**
 * The stored name a lookup or change refers to, lower-cased as TimeTracker does (username.ts); a
 * name checkUsername refuses names no row, so it can never reach another account by folding.
 */
function storedName (input: string): string | undefined {
  const checked = checkUsername(input)
  return checked.ok ? checked.username : undefined
}

export class UserRepository {
  constructor (private readonly db: Db) {}

  async findByUsername (username: string): Promise<User | undefined> {
    const name = storedName(username)
    if (name === undefined) return undefined
    const row = await this.db.kysely.selectFrom('users').selectAll().where('username', '=', name).executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  async findById (id: number): Promise<User | undefined> {
    const row = await this.db.kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  async list (): Promise<User[]> {
    const rows = await this.db.kysely.selectFrom('users').selectAll().orderBy('username').execute()
    return rows.map(toUser)
  }

  /**
   * Insert a user; when the username already exists (a concurrent first login, say) the existing row
   * is returned with `created: false` rather than an error. Callers check the name first (a name
   * checkUsername refuses is a bug here, and throws).
   */
  async create (user: NewUser): Promise<{ user: User, created: boolean }> {
    const username = storedName(user.username)
    if (username === undefined) throw new Error('refusing to create a user with an unusable username')
    const inserted = await this.db.kysely.insertInto('users').values({
      username,
      is_admin: flag(user.isAdmin ?? false),
      is_active: 1,
      password_hash: user.passwordHash ?? null,
      full_name: user.fullName ?? null,
      email: user.email ?? null,
      oidc_issuer: user.oidcIssuer ?? null,
      oidc_sub: user.oidcSub ?? null,
      created_at: new Date().toISOString()
    }).onConflict((oc) => oc.column('username').doNothing()).returningAll().executeTakeFirst()
    if (inserted !== undefined) return { user: toUser(inserted), created: true }
    const existing = await this.findByUsername(username)
    if (existing === undefined) throw new Error('user insert conflicted but no row was found')
    return { user: existing, created: false }
  }

  async findByOidcIdentity (issuer: string, sub: string): Promise<User | undefined> {
    const row = await this.db.kysely.selectFrom('users').selectAll().where('oidc_issuer', '=', issuer).where('oidc_sub', '=', sub).executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  /** Link an OIDC identity to a user that has none; false when another sign-in linked it first. */
  async linkOidcIdentity (id: number, issuer: string, sub: string): Promise<boolean> {
    const result = await this.db.kysely.updateTable('users').set({ oidc_issuer: issuer, oidc_sub: sub })
      .where('id', '=', id).where('oidc_issuer', 'is', null).where('oidc_sub', 'is', null).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  /** An OIDC sign-in: the IdP's full name and email replace ours, admin as mapped, last_login_at now. */
  async recordOidcLogin (id: number, profile: { fullName: string | null, email: string | null, isAdmin: boolean }): Promise<User> {
    const row = await this.db.kysely.updateTable('users')
      .set({ full_name: profile.fullName, email: profile.email, is_admin: flag(profile.isAdmin), last_login_at: new Date().toISOString() })
      .where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return toUser(row)
  }

  /** An SSO re-validation (not a sign-in): the IdP's full name and email replace ours, admin as mapped. */
  async recordOidcRevalidation (id: number, profile: { fullName: string | null, email: string | null, isAdmin: boolean }): Promise<User | undefined> {
    const row = await this.db.kysely.updateTable('users')
      .set({ full_name: profile.fullName, email: profile.email, is_admin: flag(profile.isAdmin) })
      .where('id', '=', id).returningAll().executeTakeFirst()
    return row === undefined ? undefined : toUser(row)
  }

  /** Run `fn` in one database transaction, with a repository bound to it. */
  async transaction<T> (fn: (users: UserRepository) => Promise<T>): Promise<T> {
    return await this.db.kysely.transaction().execute(async (trx) => await fn(new UserRepository({ ...this.db, kysely: trx })))
  }

  async setPasswordHash (username: string, passwordHash: string): Promise<boolean> {
    return await this.updateByUsername(username, { password_hash: passwordHash })
  }

  /** Disabling also revokes, so re-enabling later does not revive sessions from before. */
  async setActive (username: string, active: boolean): Promise<boolean> {
    if (active) return await this.updateByUsername(username, { is_active: 1 })
    const at = new Date()
    return await this.revoking(username, at, { is_active: 0, sessions_revoked_at: at.toISOString() })
  }

  async setAdmin (username: string, admin: boolean): Promise<boolean> {
    return await this.updateByUsername(username, { is_admin: flag(admin) })
  }

  /** Refuse every session of this user issued up to now (they sign in again). */
  async revokeSessions (username: string, at: Date = new Date()): Promise<boolean> {
    return await this.revoking(username, at, { sessions_revoked_at: at.toISOString() })
  }

  /**
   * `set` on the user, and every session of theirs still open ends at `at`. Cookies carry their issue
   * time in whole seconds, so the cutoff alone cannot tell a session from before the revocation from
   * one signed in right after it, in the same second: the ended records refuse the first, and the
   * cutoff (strictly earlier seconds) lets the second in.
   */
  private async revoking (username: string, at: Date, set: Updateable<UsersTable>): Promise<boolean> {
    const name = storedName(username)
    if (name === undefined) return false
    return await this.db.kysely.transaction().execute(async (trx) => {
      const user = await trx.updateTable('users').set(set).where('username', '=', name).returning('id').executeTakeFirst()
      if (user === undefined) return false
      // The IdP refresh tokens go with the sessions (src/auth/oidc/revalidation.ts).
      await trx.updateTable('sessions').set({ ended_at: at.toISOString(), refresh_token: null })
        .where('user_id', '=', user.id).where('ended_at', 'is', null).execute()
      return true
    })
  }

  async recordLogin (id: number, changes: { isAdmin?: boolean } = {}): Promise<User> {
    const row = await this.db.kysely.updateTable('users')
      .set({
        last_login_at: new Date().toISOString(),
        ...(changes.isAdmin !== undefined ? { is_admin: flag(changes.isAdmin) } : {})
      })
      .where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return toUser(row)
  }

  /**
   * Users whose sessions must be refused before their own expiry: disabled users (all sessions) and
   * users with a revocation instant. Read periodically, so the request path never queries.
   */
  async sessionCutoffs (): Promise<Map<number, number>> {
    const rows = await this.db.kysely.selectFrom('users').select(['id', 'is_active', 'sessions_revoked_at'])
      .where((eb) => eb.or([eb('is_active', '=', 0), eb('sessions_revoked_at', 'is not', null)]))
      .execute()
    const cutoffs = new Map<number, number>()
    for (const row of rows) {
      const revokedAt = row.sessions_revoked_at === null ? 0 : Math.floor(toDate(row.sessions_revoked_at).getTime() / 1000)
      const active = Boolean(row.is_active)
      cutoffs.set(Number(row.id), active ? revokedAt : Number.POSITIVE_INFINITY)
    }
    return cutoffs
  }

  private async updateByUsername (username: string, set: Updateable<UsersTable>): Promise<boolean> {
    const name = storedName(username)
    if (name === undefined) return false
    const result = await this.db.kysely.updateTable('users').set(set).where('username', '=', name).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }
}
