// The second factors' repository on a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres),
// opened twice as two replicas would: every single use (a TOTP step, a recovery code, a second-step
// token) succeeds once however many ask at once; a confirmed authenticator is not replaced by a new
// enrolment; removeAllOf removes everything of one user and nothing of another; migration 0008 goes down.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase } from '../support/gateway.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { SecondFactorRepository } from '../../src/db/second-factors.js'
import { UserRepository } from '../../src/db/users.js'
import { migrations } from '../../migrations/index.js'

const dir = mkdtempSync(join(tmpdir(), 'authgate-mfa-db-'))
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
const replicas = [new SecondFactorRepository(one), new SecondFactorRepository(two)]
const [a, b] = replicas as [SecondFactorRepository, SecondFactorRepository]
const users = new UserRepository(one)
const alice = (await users.create({ username: 'alice' })).user.id
const bob = (await users.create({ username: 'bob' })).user.id
const at = new Date()

/** The same call from both replicas, several times each, all at once: how many succeeded. */
async function race (call: (repo: SecondFactorRepository) => Promise<boolean>): Promise<number> {
  const results = await Promise.all([a, b, a, b, a, b].map(call))
  return results.filter(Boolean).length
}

t.test('enrolment: pending, confirmed once, never replaced while confirmed', async (t) => {
  t.equal(await a.beginTotp(alice, 'sealed-1', at), true)
  t.equal(await b.beginTotp(alice, 'sealed-2', at), true, 'a pending enrolment is replaced')
  t.equal((await a.totpOf(alice))?.sealedSecret, 'sealed-2')
  t.same(await a.summaryOf(alice), { totp: 'pending', recoveryCodesLeft: 0, passkeys: 0 })
  t.equal(await a.hasConfirmedFactor(alice), false)
  t.equal(await race(async (repo) => await repo.confirmTotp(alice, 100, ['h1', 'h2', 'h3'], at)), 1, 'confirmed once')
  t.same(await b.summaryOf(alice), { totp: 'confirmed', recoveryCodesLeft: 3, passkeys: 0 })
  t.equal(await a.beginTotp(alice, 'sealed-3', at), false, 'a confirmed authenticator stays')
  t.equal((await a.totpOf(alice))?.sealedSecret, 'sealed-2')
  t.equal((await a.totpOf(alice))?.lastStep, 100)
})

t.test('a TOTP step is accepted once, and never an earlier one', async (t) => {
  t.equal(await race(async (repo) => await repo.useTotpStep(alice, 101)), 1)
  t.equal(await a.useTotpStep(alice, 101), false, 'the same step again')
  t.equal(await a.useTotpStep(alice, 100), false, 'an earlier step')
  t.equal(await b.useTotpStep(alice, 102), true, 'a later one')
  t.equal(await a.useTotpStep(bob, 500), false, 'no confirmed authenticator: nothing to accept')
})

t.test('a recovery code is used once', async (t) => {
  t.same((await a.unusedRecoveryCodeHashes(alice)).sort(), ['h1', 'h2', 'h3'])
  t.equal(await race(async (repo) => await repo.useRecoveryCode(alice, 'h2', at)), 1)
  t.equal(await a.useRecoveryCode(alice, 'h2', at), false)
  t.equal(await a.useRecoveryCode(bob, 'h1', at), false, 'another user\'s code')
  t.same((await b.unusedRecoveryCodeHashes(alice)).sort(), ['h1', 'h3'])
  t.equal((await a.summaryOf(alice)).recoveryCodesLeft, 2)
  await a.replaceRecoveryCodes(alice, ['n1', 'n2'], at)
  t.same((await b.unusedRecoveryCodeHashes(alice)).sort(), ['n1', 'n2'], 'replaced, used ones too')
})

t.test('a second-step token is used once, and only before it expires', async (t) => {
  const now = Date.now()
  await a.createMfaToken('token-1', alice, '/next', now + 300_000)
  t.same(await b.findMfaToken('token-1', now), { userId: alice, next: '/next' })
  t.equal(await b.findMfaToken('token-1', now + 300_000), undefined, 'expired')
  t.equal(await a.useMfaToken('token-1', now + 300_000), false, 'not usable once expired')
  t.equal(await race(async (repo) => await repo.useMfaToken('token-1', now)), 1)
  t.equal(await b.findMfaToken('token-1', now), undefined, 'used')
  t.equal(await a.findMfaToken('nope', now), undefined)
  await a.createMfaToken('token-2', alice, '/', now - 1)
  t.equal(await a.deleteExpiredMfaTokens(now), 1)
})

t.test('removeAllOf: everything of the user, nothing of another', async (t) => {
  await a.beginTotp(bob, 'sealed-bob', at)
  await a.confirmTotp(bob, 7, ['b1'], at)
  await a.createMfaToken('token-3', alice, '/', Date.now() + 300_000)
  t.equal(await b.removeAllOf(alice), true)
  t.same(await a.summaryOf(alice), { totp: 'none', recoveryCodesLeft: 0, passkeys: 0 })
  t.equal(await a.findMfaToken('token-3', Date.now()), undefined, 'steps under way end too')
  t.same(await a.summaryOf(bob), { totp: 'confirmed', recoveryCodesLeft: 1, passkeys: 0 })
  t.equal(await b.removeAllOf(alice), false, 'nothing left to remove')
})

t.test('migration 0008 goes down and up again', async (t) => {
  const migration = migrations['0008_second_factor']!
  await migration.down!(one.kysely)
  await migration.up(one.kysely)
  t.same(await a.summaryOf(alice), { totp: 'none', recoveryCodesLeft: 0, passkeys: 0 })
})
