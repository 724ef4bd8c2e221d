// Where users, sessions and the sign-in throttle are stored. Shared with the CLI, which checks
// DATABASE_URL the same way before it opens anything.
import type { Reader } from './environment.js'

export const DEFAULT_DATABASE_URL = 'sqlite:./data/authgate.db'

/** Why this DATABASE_URL cannot be used, or undefined. */
export function databaseUrlProblem (url: string): string | undefined {
  if (!/^sqlite:.+/.test(url) && !/^postgres(ql)?:\/\//.test(url)) {
    return 'must be sqlite:<path> (e.g. sqlite:./data/authgate.db) or postgres://user:password@host:5432/db'
  }
  return undefined
}

/** The URL with its password hidden, for log lines and `authgate config check`. */
export function maskDatabaseUrl (url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/gi, '$1***')
}

export function parseDatabase (r: Reader): { databaseUrl: string } {
  const databaseUrl = r.get('DATABASE_URL') ?? DEFAULT_DATABASE_URL
  const problem = databaseUrlProblem(databaseUrl)
  if (problem !== undefined) r.fail('DATABASE_URL', problem)
  return { databaseUrl }
}
