// The second factors' data key on a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres),
// opened twice as two replicas would: replicas starting at once end with one key; a start with a new
// SECRET_KEY and the old one in SECRET_KEY_PREVIOUS re-seals it (replicas agreeing), after which the
// new key alone opens it; a key no configured SECRET_KEY opens fails closed while anything depends on
// it, and is replaced once nothing does (every user reset); migration 0008 removes its table going down.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase } from '../support/gateway.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { SecondFactorRepository } from '../../src/db/second-factors.js'
import { UserRepository } from '../../src/db/users.js'
import { readDeploymentId } from '../../src/db/sessions.js'
import { dataKeyWrapper, loadDataKey, openDataKey, SecondFactorKeyUnavailableError } from '../../src/auth/mfa/data-key.js'
import { migrations } from '../../migrations/index.js'

const A = 'secret-key-A-0123456789abcdef0123456789'
const B = 'secret-key-B-0123456789abcdef0123456789'
const C = 'secret-key-C-0123456789abcdef0123456789'

const dir = mkdtempSync(join(tmpdir(), 'authgate-mfa-key-'))
const database = await createTestDatabase(dir)
const one = database.open()
const two = database.open()
t.teardown(async () => {
  await one.close()
  await two.close()
  await database.drop()
  rmSync(dir, { recursive: true, force: true })
})
await migrateToLatest(one)
const deploymentId = await readDeploymentId(one)
const [a, b] = [new SecondFactorRepository(one), new SecondFactorRepository(two)]
const replicas = [a, b, a, b, a, b]

const rows = async (): Promise<Array<{ sealed_key: string }>> => await one.kysely.selectFrom('second_factor_key').select('sealed_key').execute()

let dataKey: Buffer = Buffer.alloc(0)

t.test('replicas starting at once: one key, made once', async (t) => {
  t.equal(await a.sealedDataKey(), undefined, 'none before the first start')
  const loaded = await Promise.all(replicas.map(async (repo) => await loadDataKey(repo, [A], deploymentId)))
  t.equal(loaded.filter((l) => l.outcome === 'created').length, 1, 'one replica made it')
  t.equal(loaded.filter((l) => l.outcome === 'opened').length, replicas.length - 1, 'the others read it')
  dataKey = loaded[0]!.dataKey
  t.equal(dataKey.length, 32)
  t.ok(loaded.every((l) => l.dataKey.equals(dataKey)), 'every replica has the same key')
  t.equal((await rows()).length, 1)
  t.notMatch((await rows())[0]!.sealed_key, dataKey.toString('base64url'), 'stored sealed')
  const again = await loadDataKey(b, [A], deploymentId)
  t.equal(again.outcome, 'opened')
  t.ok(again.dataKey.equals(dataKey), 'a restart finds the same key')
})

t.test('rotation: SECRET_KEY=B with A previous re-seals once, then B alone opens it', async (t) => {
  const before = (await rows())[0]!.sealed_key
  const loaded = await Promise.all(replicas.map(async (repo) => await loadDataKey(repo, [B, A], deploymentId)))
  t.ok(loaded.every((l) => l.dataKey.equals(dataKey)), 'the same data key for every replica')
  t.ok(loaded.some((l) => l.outcome === 'resealed'))
  const after = await rows()
  t.equal(after.length, 1)
  t.not(after[0]!.sealed_key, before, 'sealed anew')
  t.equal(openDataKey(dataKeyWrapper([B], deploymentId), deploymentId, after[0]!.sealed_key).state, 'current', 'under B')
  const bAlone = await loadDataKey(a, [B], deploymentId)
  t.equal(bAlone.outcome, 'opened')
  t.ok(bAlone.dataKey.equals(dataKey), 'SECRET_KEY_PREVIOUS removed: the key still opens')
})

t.test('a key no configured SECRET_KEY opens: refused while anything depends on it, replaced once nothing does', async (t) => {
  const users = new UserRepository(one)
  const alice = (await users.create({ username: 'alice' })).user.id
  await a.beginTotp(alice, 'sealed-secret', new Date())
  const before = (await rows())[0]!.sealed_key
  await t.rejects(loadDataKey(a, [C], deploymentId), SecondFactorKeyUnavailableError, 'a pending enrolment depends on it')
  await t.rejects(loadDataKey(b, [C, A], deploymentId), /SECRET_KEY_PREVIOUS.*mfa-reset/s, 'the message names both fixes')
  t.equal((await rows())[0]!.sealed_key, before, 'the stored key untouched')

  await a.confirmTotp(alice, 1, ['hash-1'], new Date())
  await a.removeAllOf(alice)
  await a.replaceRecoveryCodes(alice, ['hash-2'], new Date())
  await t.rejects(loadDataKey(a, [C], deploymentId), SecondFactorKeyUnavailableError, 'recovery codes alone depend on it too')
  await a.removeAllOf(alice)

  const loaded = await Promise.all(replicas.map(async (repo) => await loadDataKey(repo, [C], deploymentId)))
  t.equal(loaded.filter((l) => l.outcome === 'replaced').length, 1, 'replaced once')
  t.ok(loaded.every((l) => l.dataKey.equals(loaded[0]!.dataKey)), 'every replica has the new key')
  t.notOk(loaded[0]!.dataKey.equals(dataKey), 'a new key')
  t.equal((await rows()).length, 1)
  t.equal((await loadDataKey(b, [C], deploymentId)).outcome, 'opened')
})

t.test('migration 0008 takes the key\'s table down with it', async (t) => {
  const migration = migrations['0008_second_factor']!
  await migration.down!(one.kysely)
  await t.rejects(a.sealedDataKey(), 'the table is gone')
  await migration.up(one.kysely)
  t.equal(await a.sealedDataKey(), undefined)
  await t.rejects(one.kysely.insertInto('second_factor_key').values({ singleton: 2, sealed_key: 'x', created_at: new Date().toISOString(), updated_at: new Date().toISOString() }).execute(), 'one row only')
})
