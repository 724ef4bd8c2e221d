// Development convenience only (never called with NODE_ENV=production): secrets generated once and
// kept in ./data/dev-secrets.json so a restart keeps sessions valid and the demo upstream verifies.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface DevSecrets { SECRET_KEY: string, HEADER_SIGNING_SECRET: string }

/**
 * The secrets, and whether this call created them (false: loaded from an earlier start). With
 * `write: false` (a read-only check) new ones are made up but not stored.
 */
export function loadOrCreateDevSecrets (dataDir: string, { write = true } = {}): { secrets: DevSecrets, created: boolean } {
  const file = join(dataDir, 'dev-secrets.json')
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSecrets>
    if (typeof stored.SECRET_KEY === 'string' && typeof stored.HEADER_SIGNING_SECRET === 'string') {
      return { secrets: { SECRET_KEY: stored.SECRET_KEY, HEADER_SIGNING_SECRET: stored.HEADER_SIGNING_SECRET }, created: false }
    }
  } catch {
    // absent or unreadable: generate below
  }
  const secrets: DevSecrets = {
    SECRET_KEY: randomBytes(32).toString('base64url'),
    HEADER_SIGNING_SECRET: randomBytes(32).toString('base64url')
  }
  if (!write) return { secrets, created: true }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  writeFileSync(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 })
  return { secrets, created: true }
}
