// The session store and the deployment id on SQLite and PostgreSQL (TEST_DATABASE_URL; skipped with
// a notice where no PostgreSQL is configured): records are created, ended once, listed while a stolen
// copy of their cookie could still be used, and deleted once expired; IdP-initiated logout ends
// sessions by IdP session or by subject (and, for an IdP that sends no sid, only the subject's sid-less
// ones); the deployment id is one well-formed row that cannot be doubled, and a database without it
// is refused.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { readDeploymentId, SessionRepository } from '../../src/db/sessions.js'
import { newSessionId } from '../../src/session/session.js'
import { RevocationList } from '../../src/session/revocations.js'
import { startSessionCleanup } from '../../src/session/cleanup.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'

interface Backend { name: string, open: () => Promise<{ db: Db, cleanup: () => Promise<void> }> }

const backends: Backend[] = [{
  name: 'sqlite',
  open: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-sessions-'))
    return { db: openDatabase(`sqlite:${join(dir, 'authgate.db')}`), cleanup: async () => { rmSync(dir, { recursive: true, force: true }) } }
  }
}]
if (TEST_DATABASE_URL !== undefined) {
  backends.push({
    name: 'postgres',
    open: async () => {
      const schema = await createPostgresSchema()
      return { db: schema.open(), cleanup: schema.drop }
    }
  })
} else {
  t.comment('TEST_DATABASE_URL is not set: PostgreSQL session-store tests skipped (set it to postgres://postgres@127.0.0.1:5432/test)')
}

const HOUR = 3600_000

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    const { db, cleanup } = await backend.open()
    t.teardown(async () => { await db.close(); await cleanup() })
    await migrateToLatest(db)
    const records = new SessionRepository(db)
    const { user } = await new UserRepository(db).create({ username: 'alice' })
    const now = Date.now()
    const session = (expiresIn: number): { id: string, userId: number, loginMethod: 'local', createdAt: Date, expiresAt: Date } =>
      ({ id: newSessionId(), userId: user.id, loginMethod: 'local', createdAt: new Date(now), expiresAt: new Date(now + expiresIn) })

    await t.test('revoking or disabling a user ends their open records, no one else\'s', async (t) => {
      const users = new UserRepository(db)
      const { user: bob } = await users.create({ username: 'bob-revoked' })
      const { user: carol } = await users.create({ username: 'carol-untouched' })
      const bobs = [{ ...session(HOUR), userId: bob.id }, { ...session(HOUR), userId: bob.id }]
      const carols = { ...session(HOUR), userId: carol.id }
      for (const s of [...bobs, carols]) await records.create(s)
      const at = new Date(now + 2000)
      t.ok(await users.revokeSessions('bob-revoked', at))
      for (const s of bobs) t.same((await records.find(s.id))?.endedAt, at)
      t.equal((await records.find(carols.id))?.endedAt, null)
      const later = { ...session(HOUR), userId: bob.id }
      await records.create(later)
      t.equal((await records.find(later.id))?.endedAt, null, 'a sign-in after the revocation stays open')
      t.ok(await users.setActive('bob-revoked', false))
      t.not((await records.find(later.id))?.endedAt, null, 'disabling ends it')
      t.notOk(await users.revokeSessions('nobody-here'), 'unknown user: nothing changed')
    })

    await t.test('a record per sign-in, ended once', async (t) => {
      const s = session(HOUR)
      await records.create(s)
      t.same(await records.find(s.id), { ...s, endedAt: null, oidcIssuer: null, idpSessionId: null })
      await t.rejects(records.create(s), 'a session id is unique')
      await t.rejects(records.create({ ...session(HOUR), userId: 999_999 }), 'a session belongs to an existing user')
      const endedAt = new Date(now + 1000)
      t.ok(await records.end(s.id, endedAt))
      t.same((await records.find(s.id))?.endedAt, endedAt)
      t.notOk(await records.end(s.id), 'ending it again changes nothing')
      t.notOk(await records.end(newSessionId()), 'an unknown id changes nothing')
      t.equal(await records.find(newSessionId()), undefined)
    })

    await t.test('the ended sessions that could still be used are listed; expired ones are deleted', async (t) => {
      const [live, ended, endedExpired, expired] = [session(HOUR), session(HOUR), session(-HOUR), session(-2 * HOUR)]
      for (const s of [live, ended, endedExpired, expired]) await records.create(s)
      await records.end(ended.id)
      await records.end(endedExpired.id)
      const listed = await records.endedSessionIds(new Date(now))
      t.ok(listed.has(ended.id), 'ended, not expired: listed')
      t.notOk(listed.has(live.id), 'not ended: not listed')
      t.notOk(listed.has(endedExpired.id), 'ended and expired: its cookie is refused anyway')
      t.equal(await records.deleteExpired(new Date(now - 1.5 * HOUR)), 1, 'only what expired before the given instant')
      t.equal(await records.find(expired.id), undefined)
      t.ok(await records.find(endedExpired.id), 'expired more recently: kept for now')
      t.ok(await records.deleteExpired(new Date(now)) >= 1)
      t.equal(await records.find(endedExpired.id), undefined)
      t.ok(await records.find(live.id), 'unexpired sessions are never deleted')
      t.ok(await records.find(ended.id))
    })

    await t.test('the revocation list: ended elsewhere, ended here, and ended here during a read', async (t) => {
      const list = new RevocationList(new UserRepository(db), records, pino({ level: 'silent' }))
      const [elsewhere, here, during] = [session(HOUR), session(HOUR), session(HOUR)]
      for (const s of [elsewhere, here, during]) await records.create(s)
      await list.refresh()
      await records.end(elsewhere.id)
      t.notOk(list.isEnded(elsewhere.id), 'another instance\'s logout is not known before the next refresh')
      await list.refresh()
      t.ok(list.isEnded(elsewhere.id), 'and known after it')

      await records.end(here.id)
      list.endSession(here.id)
      t.ok(list.isEnded(here.id), 'this instance\'s logout applies at once')
      await list.refresh()
      t.ok(list.isEnded(here.id), 'and is still there after the next refresh')

      // A logout committed just after a read began: that read does not see it, the list keeps it.
      const reading = list.refresh()
      list.endSession(during.id)
      await reading
      t.ok(list.isEnded(during.id), 'not lost by a refresh that was already reading')
      await records.end(during.id)
      await list.refresh()
      t.ok(list.isEnded(during.id))
    })

    await t.test('the background clean-up deletes expired records at start and then periodically', async (t) => {
      const [expired, live] = [session(-HOUR), session(HOUR)]
      await records.create(expired)
      await records.create(live)
      const cleanup = startSessionCleanup(records, pino({ level: 'silent' }), 20)
      t.teardown(cleanup.stop)
      for (let i = 0; i < 500 && (await records.find(expired.id)) !== undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      t.equal(await records.find(expired.id), undefined, 'the expired record is gone')
      const later = session(-HOUR)
      await records.create(later)
      for (let i = 0; i < 500 && (await records.find(later.id)) !== undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      t.equal(await records.find(later.id), undefined, 'and one that expired after the start, at a later run')
      t.ok(await records.find(live.id), 'the live one stays')
    })

    await t.test('IdP-initiated logout: by IdP session or by subject, and a logout token id used once', async (t) => {
      const users = new UserRepository(db)
      const ISS = 'https://idp.example.test'
      const { user: dave } = await users.create({ username: 'dave-sso', oidcIssuer: ISS, oidcSub: 'sub-dave' })
      const { user: erin } = await users.create({ username: 'erin-sso', oidcIssuer: ISS, oidcSub: 'sub-erin' })
      const sso = (userId: number, sid: string | null, issuer = ISS): ReturnType<typeof session> & { oidcIssuer: string, idpSessionId: string | null } =>
        ({ ...session(HOUR), userId, loginMethod: 'oidc' as 'local', oidcIssuer: issuer, idpSessionId: sid })
      const daveOne = sso(dave.id, 'idp-1')
      const daveTwo = sso(dave.id, 'idp-2')
      const daveLocal = { ...session(HOUR), userId: dave.id }
      const erinOne = sso(erin.id, 'idp-1') // another user in an IdP session of the same id: sub tells them apart
      const otherIssuer = sso(dave.id, 'idp-2', 'https://other.example.test')
      for (const s of [daveOne, daveTwo, daveLocal, erinOne, otherIssuer]) await records.create(s)
      t.same((await records.find(daveOne.id))?.idpSessionId, 'idp-1', 'the IdP session is recorded')
      t.same((await records.idsOfIdpSession(ISS, 'idp-2')).sort(), [daveTwo.id], 'by issuer and sid')

      const at = new Date(now + 1000)
      t.same(await records.endIdpSessions({ issuer: ISS, sid: 'idp-1', sub: 'sub-dave' }, at), [{ id: daveOne.id, userId: dave.id }], 'sid and sub: that IdP session of that subject')
      t.same(await records.endIdpSessions({ issuer: ISS, sid: 'idp-1', sub: 'sub-dave' }, at), [], 'ended once')
      const token = { issuer: ISS, jti: 'jti-1', expiresAt: now + 11 * 60_000 }
      const bySub = await records.endForLogoutToken(token, { issuer: ISS, sub: 'sub-dave' }, at)
      t.same(bySub, { replayed: false, ended: [{ id: daveTwo.id, userId: dave.id }] }, 'sub: every open SSO session of that subject at that issuer')
      t.equal((await records.find(daveLocal.id))?.endedAt, null, 'not the local-password session')
      t.equal((await records.find(otherIssuer.id))?.endedAt, null, 'nor one from another issuer')
      t.equal((await records.find(erinOne.id))?.endedAt, null, 'nor another subject\'s')
      t.same(await records.endForLogoutToken(token, { issuer: ISS, sid: 'idp-1' }, at), { replayed: true }, 'the same jti again: refused')
      t.equal((await records.find(erinOne.id))?.endedAt, null, 'and it ended nothing')
      t.same(await records.endForLogoutToken({ ...token, issuer: 'https://other.example.test' }, { issuer: 'https://other.example.test', sid: 'none' }, at), { replayed: false, ended: [] }, 'the same jti from another issuer is another token')
      t.equal(await records.deleteExpiredLogoutTokenIds(new Date(now + 12 * 60_000)), 2, 'deleted once past their expiry')
      t.same(await records.endForLogoutToken(token, { issuer: ISS, sid: 'idp-1' }, at), { replayed: false, ended: [{ id: erinOne.id, userId: erin.id }] }, 'a deleted id is new again (by then its token is stale)')
    })

    await t.test('IdP-initiated logout by subject for an IdP that sends no sid: only the subject\'s sid-less sessions', async (t) => {
      const users = new UserRepository(db)
      const ISS = 'https://sidless.example.test'
      const { user: fay } = await users.create({ username: 'fay-sso', oidcIssuer: ISS, oidcSub: 'sub-fay' })
      const { user: gus } = await users.create({ username: 'gus-sso', oidcIssuer: ISS, oidcSub: 'sub-gus' })
      const sso = (userId: number, sid: string | null, issuer: string | null = ISS): ReturnType<typeof session> & { oidcIssuer: string | null, idpSessionId: string | null } =>
        ({ ...session(HOUR), userId, loginMethod: 'oidc' as 'local', oidcIssuer: issuer, idpSessionId: sid })
      const fayOne = sso(fay.id, null)
      const fayTwo = sso(fay.id, null)
      const fayWithSid = sso(fay.id, 'idp-9') // an ID token that had a sid: never reached by the subject
      const fayOldRecord = sso(fay.id, null, null) // from before the issuer was recorded
      const fayOtherIssuer = sso(fay.id, null, 'https://other.example.test')
      const fayLocal = { ...session(HOUR), userId: fay.id }
      const gusOne = sso(gus.id, null)
      for (const s of [fayOne, fayTwo, fayWithSid, fayOldRecord, fayOtherIssuer, fayLocal, gusOne]) await records.create(s)

      t.same((await records.idsOfSidlessSessionsOfSubject(ISS, 'sub-fay')).sort(), [fayOne.id, fayTwo.id].sort(), 'the subject\'s sid-less sessions from that issuer')
      t.same(await records.idsOfSidlessSessionsOfSubject(ISS, 'sub-nobody'), [], 'an unknown subject: none')
      t.same(await records.idsOfSidlessSessionsOfSubject('https://other.example.test', 'sub-fay'), [], 'the subject is the issuer\'s: another issuer\'s session of a user from this one does not match')
      t.same(await records.idsOfSidlessSessionsOfSubject(ISS, 'idp-9'), [], 'a sid is not a subject')

      const at = new Date(now + 1000)
      const ended = await records.endIdpSessions({ issuer: ISS, sub: 'sub-fay', withoutSid: true }, at)
      t.same(ended.map((e) => e.id).sort(), [fayOne.id, fayTwo.id].sort(), 'those two end')
      t.ok(ended.every((e) => e.userId === fay.id))
      for (const [what, s] of Object.entries({ 'the session recorded with a sid': fayWithSid, 'the one from before the issuer was recorded': fayOldRecord, 'the one from another issuer': fayOtherIssuer, 'the local one': fayLocal, 'another subject\'s': gusOne })) {
        t.equal((await records.find(s.id))?.endedAt, null, `${what} stays open`)
      }
      t.same(await records.endIdpSessions({ issuer: ISS, sub: 'sub-fay', withoutSid: true }, at), [], 'ended once')
      t.same((await records.idsOfSidlessSessionsOfSubject(ISS, 'sub-fay')).sort(), [fayOne.id, fayTwo.id].sort(), 'ended sessions are still known (the IdP may retry)')

      // Where every session recorded a sid (a standard IdP), the subject matches nothing.
      const { user: hal } = await users.create({ username: 'hal-sso', oidcIssuer: ISS, oidcSub: 'sub-hal' })
      const halOne = sso(hal.id, 'idp-10')
      await records.create(halOne)
      t.same(await records.idsOfSidlessSessionsOfSubject(ISS, 'sub-hal'), [], 'a subject whose sessions all had a sid: none')
      t.same(await records.endIdpSessions({ issuer: ISS, sub: 'sub-hal', withoutSid: true }, at), [], 'and none ends')
      t.equal((await records.find(halOne.id))?.endedAt, null)
    })

    await t.test('one deployment id, which cannot be doubled or go missing unnoticed', async (t) => {
      const id = await readDeploymentId(db)
      t.match(id, /^[\w-]{43}$/)
      t.equal(await readDeploymentId(db), id, 'the same at every read (every replica)')
      await t.rejects(db.kysely.insertInto('deployment').values({ singleton: 1, id: 'x'.repeat(43), created_at: new Date().toISOString() }).execute(), 'a second row is refused')
      await t.rejects(db.kysely.insertInto('deployment').values({ singleton: 2, id: 'x'.repeat(43), created_at: new Date().toISOString() }).execute(), 'by the check too')
      await db.kysely.deleteFrom('deployment').execute()
      await t.rejects(readDeploymentId(db), /exactly one/, 'no row: startup refuses to go on')
    })
  })
}
