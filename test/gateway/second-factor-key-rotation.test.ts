// A SECRET_KEY rotation as docs/DEPLOY.md describes it, through the real gateway (LOCAL_MFA=optional)
// on one database restarted three times: an authenticator app enrolled under SECRET_KEY=A signs in
// after a restart with SECRET_KEY=B and SECRET_KEY_PREVIOUS=A, and STILL after the old key is removed
// (SECRET_KEY=B alone); recovery codes likewise. Two gateways started at once on an empty database
// end with one data key. A database whose data key no configured key opens (SECRET_KEY=C alone)
// refuses to start, with the fix in the message (the old key back in SECRET_KEY_PREVIOUS, or every
// user reset: then a new key is made); with LOCAL_MFA=off it starts.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase, startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { TestClock } from '../support/clock.js'
import { totpCode } from '../support/totp.js'
import { addUser, Browser, enrol, signInWithCode } from '../support/second-factor.js'
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../../src/db/index.js'
import { logCapture } from '../support/log-capture.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { SecondFactorRepository } from '../../src/db/second-factors.js'

const A = 'rotation-secret-key-A-0123456789abcdef012345'
const B = 'rotation-secret-key-B-0123456789abcdef012345'
const C = 'rotation-secret-key-C-0123456789abcdef012345'
const D = 'rotation-secret-key-D-0123456789abcdef012345'

const upstream = await startUpstream()
t.teardown(upstream.close)

async function withDatabase (t: Test): Promise<Db> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-mfa-rotation-'))
  const database = await createTestDatabase(dir)
  const db = database.open()
  t.teardown(async () => {
    await db.close()
    await database.drop()
    rmSync(dir, { recursive: true, force: true })
  })
  return db
}

const gateway = async (db: Db, clock: TestClock, env: Record<string, string>, logger?: FastifyBaseLogger): Promise<TestGateway> =>
  await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional', ...env }, { upstream: upstream.url, clock, db, ...(logger !== undefined ? { logger } : {}) })

/** The start's log lines about the data key (made, re-sealed, replaced). */
const keyLines = (lines: Array<Record<string, unknown>>): unknown[] => lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('second factors:')).map((l) => l.outcome)

/** A fresh sign-in with a code: both steps, and the application reached. */
async function signsIn (t: Test, gw: TestGateway, code: string, what: string): Promise<void> {
  const browser = new Browser(gw.url)
  const { first, second } = await signInWithCode(browser, 'alice', code)
  t.equal(first.status, 200, `${what}: the password step asks for the second`)
  t.equal(second.status, 303, `${what}: the code signs in`)
  t.equal(second.headers.location, '/', what)
  t.equal((await browser.get('/')).status, 200, `${what}: the application reached`)
}

t.test('a rotation keeps authenticator apps and recovery codes working, after the old key is gone too', async (t) => {
  const db = await withDatabase(t)
  const clock = TestClock.atWholeSecond()

  const firstLog = logCapture()
  const first = await gateway(db, clock, { SECRET_KEY: A }, firstLog.logger)
  t.same(keyLines(firstLog.lines()), ['created'], 'the first start makes the data key')
  await addUser(first, 'alice')
  const { secret, codes } = await enrol(t, first, clock, 'alice')
  t.equal(codes.length, 10)
  await signsIn(t, first, totpCode(secret, clock.now()), 'SECRET_KEY=A')
  const storedUnderA = (await db.kysely.selectFrom('second_factor_key').select('sealed_key').executeTakeFirstOrThrow()).sealed_key
  const totpRow = (await db.kysely.selectFrom('user_totp').select('secret').executeTakeFirstOrThrow()).secret
  await first.close()

  clock.advance(30_000)
  const rotatingLog = logCapture()
  const rotating = await gateway(db, clock, { SECRET_KEY: B, SECRET_KEY_PREVIOUS: A }, rotatingLog.logger)
  t.same(keyLines(rotatingLog.lines()), ['resealed'], 'the first start with B re-seals it, and says so')
  await signsIn(t, rotating, totpCode(secret, clock.now()), 'SECRET_KEY=B, SECRET_KEY_PREVIOUS=A')
  await signsIn(t, rotating, codes[0]!, 'a recovery code, SECRET_KEY=B, SECRET_KEY_PREVIOUS=A')
  t.not((await db.kysely.selectFrom('second_factor_key').select('sealed_key').executeTakeFirstOrThrow()).sealed_key, storedUnderA, 'the data key re-sealed under B')
  t.equal((await db.kysely.selectFrom('user_totp').select('secret').executeTakeFirstOrThrow()).secret, totpRow, 'the TOTP secret itself untouched')
  await rotating.close()

  clock.advance(30_000)
  const rotatedLog = logCapture()
  const rotated = await gateway(db, clock, { SECRET_KEY: B }, rotatedLog.logger)
  t.same(keyLines(rotatedLog.lines()), [], 'opened under B: nothing to say')
  await signsIn(t, rotated, totpCode(secret, clock.now()), 'SECRET_KEY=B alone (the old key removed)')
  await signsIn(t, rotated, codes[1]!, 'a recovery code, SECRET_KEY=B alone')
  const reused = await signInWithCode(new Browser(rotated.url), 'alice', codes[0]!)
  t.equal(reused.second.status, 401, 'a recovery code used before the rotation stays used')
  await rotated.close()
})

t.test('two gateways starting at once on an empty database: one data key, both check the same codes', async (t) => {
  const clock = TestClock.atWholeSecond()
  const dir = mkdtempSync(join(tmpdir(), 'authgate-mfa-rotation-'))
  const database = await createTestDatabase(dir)
  const [dbOne, dbTwo] = [database.open(), database.open()]
  t.teardown(async () => {
    await dbOne.close()
    await dbTwo.close()
    await database.drop()
    rmSync(dir, { recursive: true, force: true })
  })
  // Migrated first (as a deployment's migration step does), then both gateways start at once.
  await migrateToLatest(dbOne)
  const [one, two] = await Promise.all([gateway(dbOne, clock, { SECRET_KEY: A }), gateway(dbTwo, clock, { SECRET_KEY: A })])
  t.teardown(one.close)
  t.teardown(two.close)
  t.equal((await dbOne.kysely.selectFrom('second_factor_key').selectAll().execute()).length, 1, 'one key')
  await addUser(one, 'alice')
  const { secret, codes } = await enrol(t, one, clock, 'alice')
  await signsIn(t, two, totpCode(secret, clock.now()), 'enrolled on one, checked by the other')
  await signsIn(t, two, codes[0]!, 'a recovery code made by one, checked by the other')
})

t.test('no configured key opens the data key: the start refuses and says how to fix it', async (t) => {
  const db = await withDatabase(t)
  const clock = TestClock.atWholeSecond()
  const first = await gateway(db, clock, { SECRET_KEY: A })
  await addUser(first, 'alice')
  const { secret } = await enrol(t, first, clock, 'alice')
  await first.close()

  await t.rejects(gateway(db, clock, { SECRET_KEY: C }), /SECRET_KEY_PREVIOUS.*authgate users mfa-reset/s, 'SECRET_KEY=C alone: refused, naming both fixes')
  await t.rejects(gateway(db, clock, { SECRET_KEY: C, SECRET_KEY_PREVIOUS: B }), /second factors' key/, 'the wrong previous key: refused too')
  const off = await gateway(db, clock, { SECRET_KEY: C, LOCAL_MFA: 'off' })
  t.equal((await new Browser(off.url).signIn('alice')).status, 303, 'LOCAL_MFA=off: the gateway starts (the key is not needed)')
  await off.close()

  const restored = await gateway(db, clock, { SECRET_KEY: C, SECRET_KEY_PREVIOUS: A })
  await signsIn(t, restored, totpCode(secret, clock.now()), 'the old key back in SECRET_KEY_PREVIOUS')
  await restored.close()

  // The other way out: the key lost for good, every user with an app or codes reset (what
  // `authgate users mfa-reset` does: SecondFactorRepository.removeAllOf). Then a new key is made.
  await t.rejects(gateway(db, clock, { SECRET_KEY: D }), /mfa-reset/, 'SECRET_KEY=D alone: refused')
  t.equal(await new SecondFactorRepository(db).removeAllOf((await restored.users.findByUsername('alice'))!.id), true)
  const resetLog = logCapture()
  const reset = await gateway(db, clock, { SECRET_KEY: D }, resetLog.logger)
  t.same(keyLines(resetLog.lines()), ['replaced'], 'nothing depended on the old key: a new one')
  t.equal((await new Browser(reset.url).signIn('alice')).status, 303, 'alice signs in with her password, to enrol again')
  await reset.close()
})
