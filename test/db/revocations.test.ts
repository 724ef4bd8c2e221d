// The revocation list's after-refresh listeners (open WebSockets are re-checked there): they run
// after every background refresh, and one that throws is logged without stopping the others.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { SessionRepository } from '../../src/db/sessions.js'
import { RevocationList } from '../../src/session/revocations.js'

t.test('listeners run after each refresh and a failing one is contained', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-revocations-'))
  const db = openDatabase(`sqlite:${join(dir, 'authgate.db')}`)
  t.teardown(async () => { await db.close(); rmSync(dir, { recursive: true, force: true }) })
  await migrateToLatest(db)
  const users = new UserRepository(db)
  const { user } = await users.create({ username: 'carol' })

  const lines: string[] = []
  const log = pino({ level: 'error' }, new Writable({ write (chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done() } }))
  const list = new RevocationList(users, new SessionRepository(db), log, 20)
  t.teardown(() => { list.stop() })

  const seen: Array<number | undefined> = []
  list.afterRefresh(() => { throw new Error('listener bug') })
  list.afterRefresh(() => { seen.push(list.cutoffFor(user.id)) })
  await list.start()
  await users.setActive('carol', false)
  // Generous bound: the 20 ms refresh should see the change after a few ticks.
  for (let i = 0; i < 500 && seen.at(-1) !== Number.POSITIVE_INFINITY; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(seen.at(-1), Number.POSITIVE_INFINITY, 'the second listener ran after the refresh that saw the change')
  t.ok(lines.some((line) => line.includes('listener bug')), 'the failing listener was logged')
})
