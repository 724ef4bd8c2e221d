// The session store: one row per sign-in, which the session cookie points to by its random id.
// Logout ends the row; gateways learn of ended sessions from the revocation list (never per request);
// expired rows are deleted. Refresh tokens and the IdP's session id will live in this row too.
import type { Db } from './index.js'
import type { LoginMethod } from '../session/session.js'

export interface SessionRecord {
  id: string
  userId: number
  loginMethod: LoginMethod
  createdAt: Date
  expiresAt: Date
  endedAt: Date | null
}

const toDate = (value: Date | string): Date => value instanceof Date ? value : new Date(value)

export class SessionRepository {
  constructor (private readonly db: Db) {}

  async create (session: Omit<SessionRecord, 'endedAt'>): Promise<void> {
    await this.db.kysely.insertInto('sessions').values({
      id: session.id,
      user_id: session.userId,
      login_method: session.loginMethod,
      created_at: session.createdAt.toISOString(),
      expires_at: session.expiresAt.toISOString()
    }).execute()
  }

  async find (id: string): Promise<SessionRecord | undefined> {
    const row = await this.db.kysely.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst()
    if (row === undefined) return undefined
    return {
      id: row.id,
      userId: Number(row.user_id),
      loginMethod: row.login_method as LoginMethod,
      createdAt: toDate(row.created_at),
      expiresAt: toDate(row.expires_at),
      endedAt: row.ended_at === null ? null : toDate(row.ended_at)
    }
  }

  /** Mark a session ended (logout); false when there is no such session or it had already ended. */
  async end (id: string, at: Date = new Date()): Promise<boolean> {
    const result = await this.db.kysely.updateTable('sessions').set({ ended_at: at.toISOString() })
      .where('id', '=', id).where('ended_at', 'is', null).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  /** Ids of the ended sessions that expire after `after`: the ones a stolen cookie could still use. */
  async endedSessionIds (after: Date): Promise<Set<string>> {
    const rows = await this.db.kysely.selectFrom('sessions').select('id')
      .where('ended_at', 'is not', null).where('expires_at', '>', after.toISOString()).execute()
    return new Set(rows.map((row) => row.id))
  }

  /** Delete the sessions that expired before `before` (ended or not); how many were deleted. */
  async deleteExpired (before: Date): Promise<number> {
    const result = await this.db.kysely.deleteFrom('sessions').where('expires_at', '<', before.toISOString()).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

/** This deployment's id (created by migration 0005); a database without exactly one is refused. */
export async function readDeploymentId (db: Db): Promise<string> {
  const rows = await db.kysely.selectFrom('deployment').select('id').execute()
  if (rows.length !== 1 || !/^[\w-]{43}$/.test(rows[0]!.id)) {
    throw new Error(`the deployment table must hold exactly one well-formed id (found ${rows.length} rows): run the migrations on an intact database`)
  }
  return rows[0]!.id
}
