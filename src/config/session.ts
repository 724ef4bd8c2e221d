// The session cookie: how long it lasts and whether it is sent over https only.
import type { Reader } from './environment.js'
import { parseBool, parseIntIn } from './parse.js'

export interface SessionConfig {
  sessionCookieSecure: boolean
  sessionMaxAge: number
}

export function parseSession (r: Reader, ctx: { production: boolean, publicUrl: URL | undefined }): Partial<SessionConfig> {
  const { get, fail } = r
  const sessionMaxAge = parseIntIn(get('SESSION_MAX_AGE') ?? '86400', 60, 400 * 86400) ??
    fail('SESSION_MAX_AGE', 'must be a whole number of seconds from 60 to 34560000 (400 days)')
  const secureDefault = ctx.production || ctx.publicUrl?.protocol === 'https:'
  const sessionCookieSecure = parseBool('SESSION_COOKIE_SECURE', get('SESSION_COOKIE_SECURE') ?? String(secureDefault), fail)
  return { sessionMaxAge, sessionCookieSecure }
}
