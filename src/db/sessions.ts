// The session store: one row per sign-in, which the session cookie points to by its random id.
// Logout ends the row; gateways learn of ended sessions from the revocation list (never per request);
// expired rows are deleted. An SSO session's refresh token (encrypted), its re-validation state and
// the identity the IdP last gave live in this row too (src/auth/oidc/revalidation.ts), and the IdP
// session it came from (issuer and the ID token's `sid`), which the IdP's back-channel and
// front-channel logout end it by.
import type { Db } from './index.js'
import type { LoginMethod } from '../session/session.js'

export interface SessionRecord {
  id: string
  userId: number
  loginMethod: LoginMethod
  createdAt: Date
  expiresAt: Date
  endedAt: Date | null
  /** OIDC sessions: the issuer, and the ID token's `sid` when the IdP sent one. */
  oidcIssuer?: string | null
  idpSessionId?: string | null
}

export interface NewSession extends Omit<SessionRecord, 'endedAt'> {
  /** SSO: the IdP's refresh token, already encrypted (src/session/refresh-token-cipher.ts). */
  sealedRefreshToken?: string
}

/** What a re-validation reads from the row it claimed. */
export interface RefreshState {
  userId: number
  expiresAt: Date
  endedAt: Date | null
  sealedRefreshToken: string | null
  validatedAt: Date | null
  /** JSON of the identity the last re-validation found (src/session/identities.ts); null: the cookie's. */
  identity: string | null
  identityVersion: number
}

/** An identity a re-validation changed, for every replica's in-memory copy. */
export interface ChangedIdentity {
  id: string
  identity: string
  identityVersion: number
  expiresAt: Date
}

/**
 * Which sessions an IdP-initiated logout ends: one IdP session (`sid`), or all of one subject's;
 * `withoutSid`: only the subject's sessions whose ID token had no `sid` (an IdP that sends none
 * names them by subject at front-channel logout).
 */
export type IdpLogoutTarget = { issuer: string, sid: string, sub?: string } | { issuer: string, sub: string, withoutSid?: true }

/** A session an IdP-initiated logout ended, and whose it was. */
export interface EndedSession { id: string, userId: number }

/** A logout token's id, kept until `expiresAt` (ms since the epoch): used once only. */
export interface LogoutTokenId { issuer: string, jti: string, expiresAt: number }

const toDate = (value: Date | string): Date => value instanceof Date ? value : new Date(value)

export class SessionRepository {
  constructor (private readonly db: Db) {}

  async create (session: NewSession): Promise<void> {
    await this.db.kysely.insertInto('sessions').values({
      id: session.id,
      user_id: session.userId,
      login_method: session.loginMethod,
      created_at: session.createdAt.toISOString(),
      expires_at: session.expiresAt.toISOString(),
      oidc_issuer: session.oidcIssuer ?? null,
      idp_session_id: session.idpSessionId ?? null,
      ...(session.sealedRefreshToken !== undefined ? { refresh_token: session.sealedRefreshToken, validated_at: session.createdAt.toISOString() } : {})
    }).execute()
  }

  /**
   * A back-channel logout token: its id is recorded and the sessions it names are ended, in one
   * transaction. `replayed` when the id was recorded before (by any replica: the primary key
   * decides), and then nothing is ended; a failure records nothing, so the IdP may send it again.
   */
  async endForLogoutToken (token: LogoutTokenId, target: IdpLogoutTarget, at: Date = new Date()): Promise<{ replayed: true } | { replayed: false, ended: EndedSession[] }> {
    return await this.db.kysely.transaction().execute(async (trx) => {
      const inserted = await trx.insertInto('logout_token_ids').values({ issuer: token.issuer, jti: token.jti, expires_at: token.expiresAt })
        .onConflict((oc) => oc.columns(['issuer', 'jti']).doNothing()).returning('jti').executeTakeFirst()
      if (inserted === undefined) return { replayed: true as const }
      return { replayed: false as const, ended: await new SessionRepository({ ...this.db, kysely: trx }).endIdpSessions(target, at) }
    })
  }

  /**
   * End the sessions of one IdP session (`sid`; with `sub`, only if they belong to that subject), or
   * every OIDC session from that issuer of the subject it calls `sub` (with `withoutSid`, only those
   * recorded from that issuer with no `sid`); those ended now.
   */
  async endIdpSessions (target: IdpLogoutTarget, at: Date = new Date()): Promise<EndedSession[]> {
    let query = this.db.kysely.updateTable('sessions').set({ ended_at: at.toISOString(), refresh_token: null })
      .where('ended_at', 'is', null).where('login_method', '=', 'oidc')
    const subjectsSessions = (sub: string): typeof query => query.where('user_id', 'in', (eb) =>
      eb.selectFrom('users').select('users.id').where('users.oidc_issuer', '=', target.issuer).where('users.oidc_sub', '=', sub))
    if ('sid' in target) {
      query = query.where('oidc_issuer', '=', target.issuer).where('idp_session_id', '=', target.sid)
      if (target.sub !== undefined) query = subjectsSessions(target.sub)
    } else if (target.withoutSid === true) {
      // Strictly this issuer's and sid-less: a subject must never reach a session an IdP session id names.
      query = subjectsSessions(target.sub).where('sessions.oidc_issuer', '=', target.issuer).where('sessions.idp_session_id', 'is', null)
    } else {
      // Sessions from before the IdP session was recorded (no issuer) belong to the subject's issuer.
      query = subjectsSessions(target.sub).where((eb) => eb.or([eb('sessions.oidc_issuer', '=', target.issuer), eb('sessions.oidc_issuer', 'is', null)]))
    }
    const rows = await query.returning(['id', 'user_id']).execute()
    return rows.map((row) => ({ id: row.id, userId: Number(row.user_id) }))
  }

  /** Every session (ended or not) that this IdP session opened: the front-channel logout's check. */
  async idsOfIdpSession (issuer: string, sid: string): Promise<string[]> {
    const rows = await this.db.kysely.selectFrom('sessions').select('id')
      .where('oidc_issuer', '=', issuer).where('idp_session_id', '=', sid).execute()
    return rows.map((row) => row.id)
  }

  /**
   * Every OIDC session (ended or not) from this issuer of the subject it calls `sub` whose ID token
   * had no `sid`: the front-channel logout's check for an IdP that names such sessions by subject.
   * Sessions recorded with a `sid`, and those from before the issuer was recorded, never match.
   */
  async idsOfSidlessSessionsOfSubject (issuer: string, sub: string): Promise<string[]> {
    const rows = await this.db.kysely.selectFrom('sessions').select('sessions.id')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .where('sessions.login_method', '=', 'oidc').where('sessions.oidc_issuer', '=', issuer).where('sessions.idp_session_id', 'is', null)
      .where('users.oidc_issuer', '=', issuer).where('users.oidc_sub', '=', sub).execute()
    return rows.map((row) => row.id)
  }

  /** Delete the logout token ids past their expiry (they would be refused as stale by then). */
  async deleteExpiredLogoutTokenIds (before: Date): Promise<number> {
    const result = await this.db.kysely.deleteFrom('logout_token_ids').where('expires_at', '<', before.getTime()).executeTakeFirst()
    return Number(result.numDeletedRows)
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
      endedAt: row.ended_at === null ? null : toDate(row.ended_at),
      oidcIssuer: row.oidc_issuer,
      idpSessionId: row.idp_session_id
    }
  }

  /**
   * Mark a session ended (logout); false when there is no such session or it had already ended.
   * Its refresh token goes with it.
   */
  async end (id: string, at: Date = new Date()): Promise<boolean> {
    const result = await this.db.kysely.updateTable('sessions').set({ ended_at: at.toISOString(), refresh_token: null })
      .where('id', '=', id).where('ended_at', 'is', null).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  /**
   * Claim the re-validation of a session, so that one replica at a time refreshes it: true when
   * this caller got it (the session is open, has a refresh token, was last validated at or before
   * `dueBefore`, and no other claim runs past `now`). One conditional UPDATE: atomic on both dialects.
   */
  async claimRefresh (id: string, now: Date, dueBefore: Date, until: Date): Promise<boolean> {
    const result = await this.db.kysely.updateTable('sessions').set({ refreshing_until: until.toISOString() })
      .where('id', '=', id).where('ended_at', 'is', null).where('refresh_token', 'is not', null)
      .where('expires_at', '>', now.toISOString())
      .where((eb) => eb.or([eb('validated_at', 'is', null), eb('validated_at', '<=', dueBefore.toISOString())]))
      .where((eb) => eb.or([eb('refreshing_until', 'is', null), eb('refreshing_until', '<', now.toISOString())]))
      .executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  async refreshState (id: string): Promise<RefreshState | undefined> {
    const row = await this.db.kysely.selectFrom('sessions')
      .select(['user_id', 'expires_at', 'ended_at', 'refresh_token', 'validated_at', 'identity', 'identity_version'])
      .where('id', '=', id).executeTakeFirst()
    if (row === undefined) return undefined
    return {
      userId: Number(row.user_id),
      expiresAt: toDate(row.expires_at),
      endedAt: row.ended_at === null ? null : toDate(row.ended_at),
      sealedRefreshToken: row.refresh_token,
      validatedAt: row.validated_at === null ? null : toDate(row.validated_at),
      identity: row.identity,
      identityVersion: Number(row.identity_version)
    }
  }

  /**
   * A re-validation succeeded: the rotated token (when the IdP sent one), the time, and a changed
   * identity with its next version; the claim is released. Nothing is written to an ended session.
   */
  async finishRefresh (id: string, result: { validatedAt: Date, sealedRefreshToken?: string, identity?: { json: string, version: number } }): Promise<void> {
    await this.db.kysely.updateTable('sessions').set({
      validated_at: result.validatedAt.toISOString(),
      refreshing_until: null,
      ...(result.sealedRefreshToken !== undefined ? { refresh_token: result.sealedRefreshToken } : {}),
      ...(result.identity !== undefined ? { identity: result.identity.json, identity_version: result.identity.version, identity_changed_at: result.validatedAt.toISOString() } : {})
    }).where('id', '=', id).where('ended_at', 'is', null).execute()
  }

  /** A re-validation that could not reach the IdP: tried again after `retryAt` (as if validated then). */
  async postponeRefresh (id: string, retryAt: Date): Promise<void> {
    await this.db.kysely.updateTable('sessions').set({ refreshing_until: retryAt.toISOString() })
      .where('id', '=', id).execute()
  }

  /** Identities changed at or after `since` of sessions that expire after `expiringAfter`. */
  async identitiesChangedSince (since: Date, expiringAfter: Date): Promise<ChangedIdentity[]> {
    const rows = await this.db.kysely.selectFrom('sessions').select(['id', 'identity', 'identity_version', 'expires_at'])
      .where('identity_changed_at', '>=', since.toISOString()).where('identity', 'is not', null)
      .where('ended_at', 'is', null).where('expires_at', '>', expiringAfter.toISOString()).execute()
    return rows.map((row) => ({ id: row.id, identity: row.identity!, identityVersion: Number(row.identity_version), expiresAt: toDate(row.expires_at) }))
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
