// SSO sessions that follow the IdP, on SQLite (a database file of its own per gateway).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase } from '../../src/db/index.js'
import { revalidationSuite } from './revalidation-suite.js'

await revalidationSuite(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-revalidation-'))
  const db = openDatabase('sqlite:./authgate.db', { cwd: dir })
  return { db, close: async () => { await db.close(); rmSync(dir, { recursive: true, force: true }) } }
})
