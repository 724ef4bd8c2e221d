// The same user-store tests on SQLite and PostgreSQL (TEST_DATABASE_URL; skipped with a notice
// where no PostgreSQL is configured, and required in CI).
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { readDeploymentId } from '../../src/db/sessions.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'
import { nodeArgs } from '../support/compiled.js'

const run = promisify(execFile)

interface Backend { name: string, open: () => Promise<{ db: Db, url: string, schema?: string, cleanup: () => Promise<void> }> }

/** `authgate migrate` in a separate process, as a second gateway instance would run it. */
async function migrateInProcess (url: string, schema: string | undefined): Promise<string> {
  const { stdout } = await run(process.execPath, [...await nodeArgs('src/cli/bin.ts'), 'migrate'], {
    env: { ...process.env, DATABASE_URL: schema === undefined ? url : `${url}?options=-c%20search_path%3D${schema}` }
  })
  return stdout.trim()
}

const backends: Backend[] = [{
  name: 'sqlite',
  open: async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'authgate-db-')), 'nested', 'authgate.db')
    return { db: openDatabase(`sqlite:${file}`), url: `sqlite:${file}`, cleanup: async () => {} }
  }
}]
if (TEST_DATABASE_URL !== undefined) {
  backends.push({
    name: 'postgres',
    open: async () => {
      const schema = await createPostgresSchema()
      return { db: schema.open(), url: schema.url, schema: schema.schema, cleanup: schema.drop }
    }
  })
} else if (process.env.CI !== undefined) {
  t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL tests run')
} else {
  t.comment('TEST_DATABASE_URL is not set: PostgreSQL user-store tests skipped (set it to postgres://postgres@127.0.0.1:5432/test)')
}

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    const { db, url, schema, cleanup } = await backend.open()
    t.teardown(async () => { await db.close(); await cleanup() })

    await t.test('two instances migrating at once apply each migration once', async (t) => {
      const outputs = await Promise.all([migrateInProcess(url, schema), migrateInProcess(url, schema)])
      t.same(outputs.sort(), ['applied: 0001_users, 0002_oidc_identity, 0003_session_revocation, 0004_login_throttle, 0005_sessions, 0006_idp_logout, 0007_refresh_tokens, 0008_second_factor, 0009_passkeys', 'database is up to date'])
      t.same(await migrateToLatest(db), [], 'idempotent')
      const deployment = await db.kysely.selectFrom('deployment').selectAll().execute()
      t.equal(deployment.length, 1, 'one deployment id, however many instances migrated')
      t.equal(await readDeploymentId(db), deployment[0]!.id)
    })

    const users = new UserRepository(db)

    await t.test('create, find, list; usernames lower-cased and unique', async (t) => {
      const { user, created } = await users.create({ username: 'Alice', isAdmin: true, email: 'alice@example.com', fullName: 'Alice A.' })
      t.ok(created)
      t.equal(user.username, 'alice')
      t.equal(user.isAdmin, true)
      t.equal(user.isActive, true)
      t.type(user.createdAt, Date)
      t.equal(user.lastLoginAt, null)
      t.same(await users.findByUsername('ALICE'), user)
      t.same(await users.findById(user.id), user)
      const again = await users.create({ username: 'alice' })
      t.notOk(again.created, 'a second create returns the existing row')
      t.equal(again.user.id, user.id)
      t.equal(await users.findByUsername('nobody'), undefined)
    })

    await t.test('a look-alike name reaches no row and cannot be created', async (t) => {
      t.equal(await users.findByUsername('ａｌｉｃｅ'), undefined, 'fullwidth')
      t.equal(await users.findByUsername(' alice'), undefined, 'surrounding space')
      t.equal(await users.setAdmin('ＡＬＩＣＥ', false), false)
      t.equal((await users.findByUsername('alice'))?.isAdmin, true, 'alice unchanged')
      await t.rejects(users.create({ username: '\u212Aarl' }), /unusable username/)
    })

    await t.test('concurrent first logins of one name create one row', async (t) => {
      const results = await Promise.all(Array.from({ length: 8 }, async () => await users.create({ username: 'racer' })))
      t.equal(results.filter((r) => r.created).length, 1)
      t.equal(new Set(results.map((r) => r.user.id)).size, 1)
    })

    await t.test('flags, passwords, logins and revocation', async (t) => {
      t.ok(await users.setPasswordHash('alice', 'scrypt$15$8$1$c2FsdHNhbHRzYWx0c2FsdA$' + 'A'.repeat(43)))
      t.match((await users.findByUsername('alice'))?.passwordHash, /^scrypt\$/)
      t.ok(await users.setAdmin('alice', false))
      t.equal((await users.findByUsername('alice'))?.isAdmin, false)
      t.notOk(await users.setAdmin('ghost', true), 'unknown user: nothing changed')

      const before = Date.now()
      const logged = await users.recordLogin((await users.findByUsername('alice'))!.id, { isAdmin: true })
      t.ok(logged.lastLoginAt !== null && logged.lastLoginAt.getTime() >= before - 1000)
      t.equal(logged.isAdmin, true)

      t.same([...(await users.sessionCutoffs()).entries()], [], 'nobody revoked yet')
      await users.revokeSessions('alice', new Date(1_700_000_000_500))
      t.ok(await users.setActive('racer', false))
      const cutoffs = await users.sessionCutoffs()
      t.equal(cutoffs.get(logged.id), 1_700_000_000)
      t.equal(cutoffs.get((await users.findByUsername('racer'))!.id), Number.POSITIVE_INFINITY, 'disabled: every session')
      t.ok(await users.setActive('racer', true))
      t.ok(Number.isFinite((await users.sessionCutoffs()).get((await users.findByUsername('racer'))!.id)), 're-enabled: sessions from before stay revoked')
      t.same((await users.list()).map((u) => u.username), ['alice', 'racer'])
    })

    await t.test('schema: unique (oidc_issuer, oidc_sub) and indexed email', async (t) => {
      await users.create({ username: 'linked1', oidcIssuer: 'https://idp', oidcSub: 'sub-1', email: 'l@example.com' })
      await t.rejects(db.kysely.insertInto('users').values({ username: 'linked2', is_admin: 0, is_active: 1, oidc_issuer: 'https://idp', oidc_sub: 'sub-1', created_at: new Date().toISOString() }).execute(), 'the same identity twice is refused')
      const ok = await users.create({ username: 'linked3', oidcIssuer: 'https://other-idp', oidcSub: 'sub-1' })
      t.ok(ok.created, 'same sub at another issuer is another identity')
      const rows = await sql<{ n: number }>`select count(*) as n from users where email = ${'l@example.com'}`.execute(db.kysely)
      t.equal(Number(rows.rows[0]?.n), 1)
    })
  })
}
