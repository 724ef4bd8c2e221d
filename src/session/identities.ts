// Which identity each re-validated SSO session has now. The cookie keeps the identity of the sign-in
// (it is never re-issued: a copy of the old cookie would carry the old identity anyway), so the
// server side must win: a re-validation (src/auth/oidc/revalidation.ts) writes the new identity, with
// a version one higher, into the session's row and into this map at once; every other replica reads
// the rows changed since its last read at each revocation refresh (src/session/revocations.ts, 5 s).
// Sessions.check lays the newest identity over the cookie's, so the next request of that session on
// any replica carries it; a WebSocket or stream admitted with an older version is ended (Sessions.recheck).
import type { SessionRepository } from '../db/sessions.js'
import type { SessionPayload } from './session.js'
import { CLOCK_SKEW_SECONDS } from './session.js'
import { systemClock, type Clock } from '../clock.js'

/** The parts of a session's identity the IdP decides (the username is the user row's and stays). */
export interface RefreshedIdentity {
  a: boolean
  e: string | null
  n: string | null
  g: string[]
  ev: boolean
}

interface Entry { version: number, identity: RefreshedIdentity, expiresAt: number }

const nullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'

/** Narrow a stored identity; anything else is undefined (and that row is ignored). */
export function parseRefreshedIdentity (json: string): RefreshedIdentity | undefined {
  let value: unknown
  try { value = JSON.parse(json) } catch { return undefined }
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  if (typeof v.a !== 'boolean' || !nullableString(v.e) || !nullableString(v.n) || !Array.isArray(v.g) ||
    !v.g.every((g) => typeof g === 'string') || typeof v.ev !== 'boolean') return undefined
  return { a: v.a, e: v.e, n: v.n, g: v.g as string[], ev: v.ev }
}

export function identityOf (p: SessionPayload): RefreshedIdentity {
  return { a: p.a, e: p.e, n: p.n, g: p.g, ev: p.ev === true }
}

export function sameIdentity (x: RefreshedIdentity, y: RefreshedIdentity): boolean {
  return x.a === y.a && x.e === y.e && x.n === y.n && x.ev === y.ev && x.g.length === y.g.length && x.g.every((g, i) => g === y.g[i])
}

export class SessionIdentities {
  private readonly current = new Map<string, Entry>()
  /** When the last successful read began (clock ms); undefined: never, the first read takes all. */
  private readFrom: number | undefined
  private readonly listeners: Array<() => void> = []

  constructor (private readonly records: Pick<SessionRepository, 'identitiesChangedSince'>, private readonly clock: Clock = systemClock) {}

  /** The session with its newest identity laid over the cookie's (`iv`: the version it carries). */
  apply (payload: SessionPayload): SessionPayload {
    const entry = this.current.get(payload.sid)
    if (entry === undefined || entry.version <= (payload.iv ?? 0)) return payload
    return { ...payload, ...entry.identity, iv: entry.version }
  }

  /** The newest identity version known here for this session (0: the cookie's). */
  versionOf (sessionId: string): number {
    return this.current.get(sessionId)?.version ?? 0
  }

  /** A re-validation's result, or a row read from the database: kept when newer than what is known. */
  set (sessionId: string, version: number, identity: RefreshedIdentity, expiresAt: number): void {
    if (this.keep(sessionId, version, identity, expiresAt)) for (const listener of this.listeners) listener()
  }

  private keep (sessionId: string, version: number, identity: RefreshedIdentity, expiresAt: number): boolean {
    if (version <= this.versionOf(sessionId)) return false
    this.current.set(sessionId, { version, identity, expiresAt })
    return true
  }

  /** Run after an identity changed here (open WebSockets and streams are re-checked). */
  onChange (listener: () => void): void {
    this.listeners.push(listener)
  }

  /** Read the identities changed since the last read (by any replica); drop the expired ones. */
  async refresh (): Promise<void> {
    const startedAt = this.clock.now()
    // Rows are stamped with the writing replica's clock: read back far enough for clocks that differ.
    const since = new Date(this.readFrom === undefined ? 0 : this.readFrom - CLOCK_SKEW_SECONDS * 1000)
    const rows = await this.records.identitiesChangedSince(since, new Date(startedAt))
    for (const row of rows) {
      const identity = parseRefreshedIdentity(row.identity)
      // No listeners here: the revocation refresh that runs this re-checks open connections after it.
      if (identity !== undefined) this.keep(row.id, row.identityVersion, identity, row.expiresAt.getTime())
    }
    for (const [id, entry] of this.current) if (entry.expiresAt <= startedAt) this.current.delete(id)
    this.readFrom = startedAt
  }
}
