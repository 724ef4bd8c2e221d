// The throttle's counters in the database (src/db/login-throttle.ts), on SQLite and PostgreSQL
// (TEST_DATABASE_URL; skipped with a notice where no PostgreSQL is configured, and required in CI):
// atomic counting under concurrency, also from two connections as two replicas would count, windows
// that start again, release and forget, and expired rows deleted.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { LoginThrottleStore } from '../../src/db/login-throttle.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'

interface Backend { name: string, open: () => Promise<{ replicas: [Db, Db], cleanup: () => Promise<void> }> }

const backends: Backend[] = [{
  name: 'sqlite',
  open: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-throttle-db-'))
    const url = `sqlite:${join(dir, 'authgate.db')}`
    return { replicas: [openDatabase(url), openDatabase(url)], cleanup: async () => { rmSync(dir, { recursive: true, force: true }) } }
  }
}]
if (TEST_DATABASE_URL !== undefined) {
  backends.push({
    name: 'postgres',
    open: async () => {
      const schema = await createPostgresSchema()
      return { replicas: [schema.open(), schema.open()], cleanup: schema.drop }
    }
  })
} else if (process.env.CI !== undefined) {
  t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL tests run')
} else {
  t.comment('TEST_DATABASE_URL is not set: PostgreSQL throttle-store tests skipped (set it to postgres://postgres@127.0.0.1:5432/test)')
}

const NOW = 1_800_000_000_000
const WINDOW = 900

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    const { replicas: [a, b], cleanup } = await backend.open()
    t.teardown(async () => { await a.close(); await b.close(); await cleanup() })
    await migrateToLatest(a)
    const storeA = new LoginThrottleStore(a)
    const storeB = new LoginThrottleStore(b)
    const rows = async (): Promise<number> => Number((await a.kysely.selectFrom('login_throttle').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)

    await t.test('counts within a window, then starts again', async (t) => {
      t.same(await storeA.hit('k', WINDOW, NOW), { count: 1, resetAt: NOW + WINDOW * 1000 })
      t.same(await storeB.hit('k', WINDOW, NOW + 1000), { count: 2, resetAt: NOW + WINDOW * 1000 }, 'the other replica sees the same counter, same window')
      t.same(await storeA.hit('k', WINDOW, NOW + WINDOW * 1000), { count: 1, resetAt: NOW + 2 * WINDOW * 1000 }, 'a window that is over starts again')
    })

    await t.test('concurrent hits from two replicas each get their own count', async (t) => {
      const counters = await Promise.all(Array.from({ length: 60 }, async (_, i) => await (i % 2 === 0 ? storeA : storeB).hit('burst', WINDOW, NOW)))
      t.same(counters.map((c) => c.count).sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i + 1), 'counts 1..60, none read twice')
    })

    await t.test('release un-counts one attempt, never below zero; forget drops the counter', async (t) => {
      await storeA.hit('r', WINDOW, NOW)
      await storeA.hit('r', WINDOW, NOW)
      await storeA.release(['r', 'absent'])
      t.equal((await storeA.hit('r', WINDOW, NOW)).count, 2)
      await storeA.release(['r']); await storeA.release(['r']); await storeA.release(['r'])
      t.equal((await storeA.hit('r', WINDOW, NOW)).count, 1, 'released to zero, not below')
      await storeA.forget(['r'])
      t.same(await storeA.hit('r', WINDOW, NOW + 5000), { count: 1, resetAt: NOW + 5000 + WINDOW * 1000 }, 'a new window after forget')
      await storeA.release([]); await storeA.forget([])
    })

    await t.test('expired rows are deleted as attempts come in: the table stays bounded', async (t) => {
      const later = NOW + 10 * WINDOW * 1000
      const fresh = new LoginThrottleStore(a)
      await a.kysely.deleteFrom('login_throttle').execute()
      for (let i = 0; i < 200; i++) await fresh.hit(`flood ${i}`, WINDOW, later)
      t.equal(await rows(), 200)
      await fresh.hit('one more', WINDOW, later + WINDOW * 1000 + 60_000)
      t.same((await a.kysely.selectFrom('login_throttle').select('key').execute()).map((r) => r.key), ['one more'], 'the flood\'s rows are gone with their window')
    })
  })
}
