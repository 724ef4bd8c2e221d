// The switch `npm run test:postgres` relies on (TEST_DATABASE, test/support/gateway.ts): in that pass
// a gateway without a database of its own really is on PostgreSQL, on a schema no other gateway
// sees, dropped when it closes; a shared test database reaches the same data from the CLI's process.
// In `npm test` the same checks hold for SQLite.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { sql } from 'kysely'
import { createTestDatabase, startGateway, TEST_DATABASE, TEST_DATABASE_URL } from './gateway.js'
import { runNode } from './process.js'

t.test(`startGateway keeps each gateway's data apart, on ${TEST_DATABASE}`, async (t) => {
  const a = await startGateway()
  const b = await startGateway()
  t.teardown(async () => { await b.close() })
  t.equal(a.db.dialect, TEST_DATABASE)
  t.equal(a.config.databaseUrl.startsWith(TEST_DATABASE === 'postgres' ? 'postgres:' : 'sqlite:'), true)
  await a.users.create({ username: 'only-in-a', isAdmin: false, passwordHash: null })
  t.ok(await a.users.findByUsername('only-in-a'))
  t.equal(await b.users.findByUsername('only-in-a'), undefined, 'another gateway: another database')

  if (TEST_DATABASE === 'postgres') {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(a.db.kysely)
    const schema = rows[0]!.schema
    t.match(schema, /^authgate_test_[0-9a-f]+$/)
    await a.close()
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    t.teardown(async () => { await admin.end() })
    const left = await admin.query('select 1 from pg_namespace where nspname = $1', [schema])
    t.equal(left.rowCount, 0, 'its schema is dropped at close')
  } else {
    await a.close()
  }
})

t.test('createTestDatabase: the same data from this process and from the CLI\'s', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-testdb-'))
  const database = await createTestDatabase(dir)
  t.teardown(database.drop)
  const gw = await startGateway({}, { db: database.open() })
  t.teardown(async () => { await gw.close(); await gw.db.close() })
  t.equal(gw.db.dialect, TEST_DATABASE)
  await gw.users.create({ username: 'shared-user', isAdmin: false, passwordHash: null })
  const listed = await runNode('src/cli/bin.ts', ['users', 'list'], { env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'silent' } })
  t.equal(listed.code, 0, listed.stderr)
  t.match(listed.stdout, /^shared-user$/m)
})
