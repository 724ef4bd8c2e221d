// The session cookie: how long it lasts and whether it is sent over https only; and how long sessions
// are still trusted on a revocation list the database could not refresh.
import type { Reader } from './environment.js'
import { parseBool, parseIntIn } from './parse.js'

export interface SessionConfig {
  sessionCookieSecure: boolean
  sessionMaxAge: number
  /**
   * REVOCATION_MAX_STALENESS, seconds: while the database fails, signed-in users keep being served on
   * the last revocation list read, until it is this old; then they are refused (503) until it is read
   * again (src/session/revocations.ts).
   */
  revocationMaxStaleness: number
}

/** REVOCATION_MAX_STALENESS's default, seconds: a database restart or failover fits well within it. */
export const REVOCATION_MAX_STALENESS_DEFAULT = 300

export function parseSession (r: Reader, ctx: { production: boolean, publicUrl: URL | undefined }): Partial<SessionConfig> {
  const { get, fail } = r
  const sessionMaxAge = parseIntIn(get('SESSION_MAX_AGE') ?? '86400', 60, 400 * 86400) ??
    fail('SESSION_MAX_AGE', 'must be a whole number of seconds from 60 to 34560000 (400 days)')
  const secureDefault = ctx.production || ctx.publicUrl?.protocol === 'https:'
  const sessionCookieSecure = parseBool('SESSION_COOKIE_SECURE', get('SESSION_COOKIE_SECURE') ?? String(secureDefault), fail)
  // At least three refreshes (every 5 s) missed: one slow refresh must not refuse everyone.
  const revocationMaxStaleness = parseIntIn(get('REVOCATION_MAX_STALENESS') ?? String(REVOCATION_MAX_STALENESS_DEFAULT), 15, 86400) ??
    fail('REVOCATION_MAX_STALENESS', 'must be a whole number of seconds from 15 to 86400 (a day)')
  return { sessionMaxAge, sessionCookieSecure, revocationMaxStaleness }
}
