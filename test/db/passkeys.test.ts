// Passkeys in the database (src/db/passkeys.ts) and the ceremonies over it (src/auth/passkeys/
// ceremonies.ts), with real WebAuthn answers from a software authenticator, on SQLite and, with
// TEST_DATABASE_URL, PostgreSQL: a challenge used once even by two replicas at the same instant, for
// its purpose and user only, and not after five minutes; a counter that must move forward; a
// passkey of one user never accepted for another; removal of one or all; expired challenges purged.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { MAX_PASSKEYS_PER_USER, PasskeyRepository } from '../../src/db/passkeys.js'
import { SecondFactorRepository } from '../../src/db/second-factors.js'
import { CHALLENGE_TTL_MS, PasskeyCeremonies } from '../../src/auth/passkeys/ceremonies.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'
import { TestClock } from '../support/clock.js'
import { SoftAuthenticator } from '../support/soft-authenticator.js'

interface Backend { name: string, open: () => Promise<{ replicas: [Db, Db], cleanup: () => Promise<void> }> }

const backends: Backend[] = [{
  name: 'sqlite',
  open: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-passkeys-db-'))
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
} else {
  t.comment('TEST_DATABASE_URL is not set: the PostgreSQL half of this file is not run')
}

const RP = { id: 'localhost', origin: 'http://localhost:8080' }

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    const { replicas: [db, other], cleanup } = await backend.open()
    t.teardown(async () => { await db.close(); await other.close(); await cleanup() })
    await migrateToLatest(db)
    const users = new UserRepository(db)
    const alice = (await users.create({ username: 'alice', passwordHash: 'x' })).user
    const bob = (await users.create({ username: 'bob', passwordHash: 'x' })).user
    const clock = new TestClock()
    const store = new PasskeyRepository(db)
    const ceremonies = new PasskeyCeremonies(store, clock, 'TimeTracker')
    const replica = new PasskeyCeremonies(new PasskeyRepository(other), clock, 'TimeTracker')
    const authenticator = new SoftAuthenticator(RP.origin)

    await t.test('registration: options for the user, the answer verified once, the passkey stored', async (t) => {
      const options = await ceremonies.registrationOptions(RP, alice, true)
      t.equal(options.rp.id, 'localhost')
      t.equal(options.rp.name, 'TimeTracker')
      t.equal(options.attestation, 'none')
      t.equal(options.authenticatorSelection?.userVerification, 'required', 'sign-in without a password: the user must be verified')
      t.equal(options.authenticatorSelection?.residentKey, 'required')
      const { answer, credential } = authenticator.register(options)
      const result = await ceremonies.register(RP, alice.id, answer, 'Laptop')
      t.ok(result.ok, 'registered')
      t.equal(result.ok && result.value.passwordless, true, 'passwordless, as the options were issued for')
      const stored = await store.findById(credential.id)
      t.equal(stored?.userId, alice.id)
      t.equal(stored?.name, 'Laptop')
      t.same(stored?.transports, ['internal'])
      t.equal(stored?.lastUsedAt, null)
      const again = await ceremonies.register(RP, alice.id, answer, 'Laptop')
      t.same(again, { ok: false, reason: 'challenge' }, 'the same answer again: its challenge is used')
      const second = await ceremonies.registrationOptions(RP, alice, false)
      t.same(second.excludeCredentials?.map((c) => c.id), [credential.id], 'the passkeys already held are excluded')
      t.equal(second.authenticatorSelection?.userVerification, 'preferred', 'a second factor: verification preferred')
    })

    await t.test('registration refusals', async (t) => {
      const options = await ceremonies.registrationOptions(RP, alice, false)
      t.same(await ceremonies.register(RP, bob.id, authenticator.register(options).answer, 'x'), { ok: false, reason: 'challenge' }, 'a challenge issued for another user')
      const forOrigin = await ceremonies.registrationOptions(RP, alice, false)
      t.same(await ceremonies.register(RP, alice.id, authenticator.register(forOrigin, { origin: 'http://evil.example' }).answer, 'x'), { ok: false, reason: 'origin' })
      const noUv = await ceremonies.registrationOptions(RP, alice, true)
      t.same(await ceremonies.register(RP, alice.id, authenticator.register(noUv, { uv: false }).answer, 'x'), { ok: false, reason: 'user-verification' }, 'passwordless without user verification')
      t.same(await ceremonies.register(RP, alice.id, { id: 'not base64!' }, 'x'), { ok: false, reason: 'malformed' })
      t.same(await ceremonies.register(RP, alice.id, 'nonsense', 'x'), { ok: false, reason: 'malformed' })
      const expired = await ceremonies.registrationOptions(RP, alice, false)
      clock.advance(CHALLENGE_TTL_MS)
      t.same(await ceremonies.register(RP, alice.id, authenticator.register(expired).answer, 'x'), { ok: false, reason: 'challenge' }, 'five minutes later')
      t.equal((await store.listForUser(alice.id)).length, 1, 'nothing stored by any refusal')
    })

    await t.test('sign-in without a password, and as a second factor', async (t) => {
      const [laptop] = authenticator.credentials
      const options = await ceremonies.signInOptions(RP)
      t.equal(options.userVerification, 'required')
      t.equal(options.allowCredentials, undefined, 'no user yet: the browser offers what it holds')
      const signedIn = await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, options))
      t.ok(signedIn.ok)
      t.equal(signedIn.ok && signedIn.value.userId, alice.id)
      t.ok((await store.findById(laptop!.id))?.lastUsedAt, 'last use recorded')

      const noUv = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, noUv, { uv: false })), { ok: false, reason: 'user-verification' }, 'without a password, the user must be verified')
      const back = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, back, { counter: 1 })), { ok: false, reason: 'counter' }, 'a counter that went back')
      const wrongChallenge = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, wrongChallenge, { challenge: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })), { ok: false, reason: 'challenge' })
      const wrongOrigin = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, wrongOrigin, { origin: 'http://localhost:9999' })), { ok: false, reason: 'origin' })
      const wrongRp = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(laptop!, { challenge: wrongRp.challenge, rpId: 'example.com' })), { ok: false, reason: 'invalid' }, 'signed for another relying party')

      const secondFactorOnly = authenticator.register(await ceremonies.registrationOptions(RP, alice, false))
      t.ok((await ceremonies.register(RP, alice.id, secondFactorOnly.answer, 'Key')).ok)
      t.match(await ceremonies.verifySignIn(RP, authenticator.assert(secondFactorOnly.credential, await ceremonies.signInOptions(RP))), { ok: false, reason: 'not-passwordless' }, 'a second-factor-only passkey does not sign in alone')

      const second = await ceremonies.secondFactorOptions(RP, alice.id)
      t.equal(second?.userVerification, 'preferred')
      t.same(second?.allowCredentials?.map((c) => c.id).sort(), [laptop!.id, secondFactorOnly.credential.id].sort(), 'the user\'s passkeys, all of them')
      t.ok((await ceremonies.verifySecondFactor(RP, alice.id, authenticator.assert(secondFactorOnly.credential, second!, { uv: false }))).ok, 'as a second factor, presence is enough')
      t.equal(await ceremonies.secondFactorOptions(RP, bob.id), undefined, 'bob has no passkey')
      const bobs = await ceremonies.secondFactorOptions(RP, alice.id)
      t.match(await ceremonies.verifySecondFactor(RP, bob.id, authenticator.assert(laptop!, bobs!)), { ok: false, reason: 'wrong-user' }, 'alice\'s passkey never stands for bob')
      const crossPurpose = await ceremonies.signInOptions(RP)
      t.match(await ceremonies.verifySecondFactor(RP, alice.id, authenticator.assert(laptop!, crossPurpose)), { ok: false, reason: 'challenge' }, 'a sign-in challenge is not a second-factor one')
      t.match(await ceremonies.verifySignIn(RP, { ...authenticator.assert(laptop!, crossPurpose), id: 'AAAA', rawId: 'AAAA' }), { ok: false, reason: 'unknown-credential' })
    })

    await t.test('two replicas answering one challenge at once: one wins', async (t) => {
      const [laptop] = authenticator.credentials
      const options = await ceremonies.signInOptions(RP)
      const answer = authenticator.assert(laptop!, options)
      const results = await Promise.all([ceremonies.verifySignIn(RP, answer), replica.verifySignIn(RP, answer)])
      t.equal(results.filter((r) => r.ok).length, 1, 'exactly one accepted')
      t.match(results.find((r) => !r.ok), { reason: 'challenge' })
    })

    await t.test('the counter moves by compare-and-set', async (t) => {
      const [laptop] = authenticator.credentials
      const stored = (await store.findById(laptop!.id))!
      t.ok(await store.recordUse(stored.id, stored.counter, stored.counter + 1, new Date(clock.now())))
      t.notOk(await store.recordUse(stored.id, stored.counter, stored.counter + 2, new Date(clock.now())), 'from a value no longer current')
    })

    await t.test('a cap per user, removal, and expired challenges purged', async (t) => {
      for (let i = (await store.listForUser(bob.id)).length; i < MAX_PASSKEYS_PER_USER; i++) {
        t.ok(await store.add({ id: `bob-${i}`, userId: bob.id, publicKey: new Uint8Array([1]), counter: 0, transports: [], name: `k${i}`, passwordless: false }, new Date()))
      }
      t.notOk(await store.add({ id: 'bob-extra', userId: bob.id, publicKey: new Uint8Array([1]), counter: 0, transports: [], name: 'extra', passwordless: false }, new Date()), 'one past the cap')
      t.notOk(await store.add({ id: authenticator.credentials[0]!.id, userId: alice.id, publicKey: new Uint8Array([1]), counter: 0, transports: [], name: 'dup', passwordless: false }, new Date()), 'a credential id stored already')
      t.equal(await store.remove(alice.id, 'bob-0'), undefined, 'alice cannot remove bob\'s passkey')
      t.equal((await store.remove(bob.id, 'bob-0'))?.name, 'k0')
      t.equal(await new SecondFactorRepository(db).removeAllOf(bob.id), true, 'mfa-reset\'s removal takes every passkey of the user')
      t.same(await store.listForUser(bob.id), [])
      t.equal((await store.listForUser(alice.id)).length, 2, 'alice\'s untouched')

      await store.createChallenge('old', 'sign-in', null, clock.now() - 1)
      await store.createChallenge('fresh', 'sign-in', null, clock.now() + 1000)
      t.ok(await store.deleteExpiredChallenges(clock.now()) >= 1)
      t.equal(await store.consumeChallenge('old', ['sign-in'], null, clock.now() - 10), undefined, 'the expired one is gone')
      t.equal(await store.consumeChallenge('fresh', ['sign-in'], null, clock.now()), 'sign-in', 'the fresh one stays')
    })
  })
}
