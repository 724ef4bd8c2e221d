// Four gateways started at the same moment on an empty database (a rolling deploy, a scaled-up
// Deployment): the migrations run once, by one of them, and all four come up ready. On PostgreSQL
// (TEST_DATABASE_URL; required in CI) Kysely's migrator takes an advisory lock; on SQLite the whole
// run is one BEGIN IMMEDIATE transaction (src/db/migrate.ts). Real processes (src/main.ts), each
// logging what it applied; on PostgreSQL also four migrators of one process at the very same instant.
// That a migrator waits on another's lock: test/db/postgres-connection.test.ts.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { sql } from 'kysely'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { migrations } from '../../migrations/index.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'
import { http } from '../support/http.js'
import { nodeArgs } from '../support/compiled.js'

const MAIN = resolve('src/main.ts')
const ALL = Object.keys(migrations)

interface Started { url: string, applied: string[] }

/** A gateway process; resolves once it listens (with what it migrated), rejects if it exits first. */
async function startGatewayProcess (t: Test, env: Record<string, string>): Promise<Started> {
  const args = await nodeArgs(MAIN)
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-concurrent-'))
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_FORMAT: 'json',
      SECRET_KEY: 'concurrent-start-secret-key-0123456789abcdef',
      HEADER_SIGNING_SECRET: 'concurrent-start-header-secret-0123456789ab',
      UPSTREAM_URL: 'http://127.0.0.1:9',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<void>((resolve) => child.on('exit', () => { resolve() }))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
    rmSync(cwd, { recursive: true, force: true })
  })
  let output = ''
  let applied: string[] | undefined
  return await new Promise<Started>((resolve, reject) => {
    child.stderr!.on('data', (d) => { output += String(d) })
    child.stdout!.on('data', (d) => {
      output += String(d)
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue
        let entry: { msg?: string, applied?: string[], listen?: string }
        try {
          entry = JSON.parse(line) as typeof entry
        } catch {
          continue
        }
        if (entry.msg === 'database ready') applied = entry.applied
        if (entry.listen !== undefined && applied !== undefined) resolve({ url: `http://${entry.listen}`, applied })
      }
    })
    child.on('exit', (code) => { reject(new Error(`gateway exited (${code ?? 'signal'}) before listening:\n${output}`)) })
  })
}

/** Four at once; what each applied, and that each answers readyz 200. */
async function fourAtOnce (t: Test, env: Record<string, string>): Promise<string[][]> {
  const started = await Promise.all([1, 2, 3, 4].map(async () => await startGatewayProcess(t, env)))
  for (const [i, gw] of started.entries()) {
    const ready = await http(`${gw.url}/_authgate/readyz`)
    t.equal(ready.status, 200, `gateway ${i + 1} is ready`)
  }
  return started.map((s) => s.applied)
}

/** Every migration applied exactly once across the four, the others finding nothing left to do. */
function appliedOnce (t: Test, applied: string[][]): void {
  t.same(applied.flat().sort(), ALL, 'each migration applied once, by one gateway or another')
  t.equal(applied.filter((a) => a.length > 0).length >= 1, true)
}

t.test('SQLite: four gateway processes on one new file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-concurrent-sqlite-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const url = `sqlite:${join(dir, 'shared', 'authgate.db')}`
  const applied = await fourAtOnce(t, { DATABASE_URL: url })
  appliedOnce(t, applied)
  const db = openDatabase(url)
  t.teardown(async () => { await db.close() })
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db.kysely)
  t.same(rows.map((r) => r.name), ALL, 'the migrations table has each migration once')
  const deployments = await db.kysely.selectFrom('deployment').selectAll().execute()
  t.equal(deployments.length, 1, 'one deployment id: the four gateways are one deployment')
})

if (TEST_DATABASE_URL === undefined) {
  if (process.env.CI !== undefined) t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL tests run')
  else t.comment('TEST_DATABASE_URL is not set: the PostgreSQL concurrent-start tests did not run (set it to postgres://postgres@127.0.0.1:5432/test)')
} else {
  t.test('PostgreSQL: four gateway processes on an empty schema', async (t) => {
    const schema = await createPostgresSchema()
    t.teardown(schema.drop)
    const applied = await fourAtOnce(t, { DATABASE_URL: schema.schemaUrl })
    appliedOnce(t, applied)
    const db = schema.open()
    t.teardown(async () => { await db.close() })
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db.kysely)
    t.same(rows.map((r) => r.name), ALL, 'the migrations table has each migration once')
    t.equal((await db.kysely.selectFrom('deployment').selectAll().execute()).length, 1, 'one deployment id')
  })

  t.test('PostgreSQL: four migrators at the very same instant, on an empty schema', async (t) => {
    const schema = await createPostgresSchema()
    t.teardown(schema.drop)
    const dbs: Db[] = [1, 2, 3, 4].map(() => schema.open())
    t.teardown(async () => { for (const db of dbs) await db.close() })
    // Each pool connected first, so the four runs start together rather than in connection order.
    await Promise.all(dbs.map(async (db) => await sql`select 1`.execute(db.kysely)))
    const applied = await Promise.all(dbs.map(async (db) => await migrateToLatest(db)))
    appliedOnce(t, applied)
    t.equal(applied.filter((a) => a.length > 0).length, 1, 'one of them applied them all')
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(dbs[0]!.kysely)
    t.same(rows.map((r) => r.name), ALL)
    t.same(await Promise.all(dbs.map(async (db) => await migrateToLatest(db))), [[], [], [], []], 'then nothing is left to do')
  })
}
