// SQLite failing under a running gateway: another process holding the write lock (a second gateway,
// the CLI, a backup), and the disk full. Writes wait for a lock without stopping the event loop and
// go through once it is released; a lock held too long, or a full disk, answers sign-ins with a 503
// page while signed-in users keep being served; nothing is half-written; all recovers by itself.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { sql } from 'kysely'
import { DatabaseUnavailableError, openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, csrfTokenFrom, http, loginLocal, setCookies, type Response } from '../support/http.js'
import { logCapture } from '../support/log-capture.js'
import { eventually, within } from '../support/within.js'

const upstream = await startUpstream()
t.teardown(upstream.close)

type Logs = ReturnType<typeof logCapture>

async function sqliteGateway (t: Test, options: { busyTimeoutMs?: number } = {}): Promise<{ gw: TestGateway, db: Db, file: string, logs: Logs }> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-sqlite-faults-'))
  const file = join(dir, 'authgate.db')
  const logs = logCapture('info')
  const db = openDatabase(`sqlite:${file}`, { log: logs.logger, ...options })
  const gw = await startGateway({}, { db, upstream: upstream.url, logger: logs.logger, revocationRefreshMs: 100 })
  t.teardown(async () => { await gw.close(); await db.close(); rmSync(dir, { recursive: true, force: true }) })
  return { gw, db, file, logs }
}

/**
 * Another process with its own connection to the file, holding the write lock (BEGIN IMMEDIATE)
 * until released: what a second gateway, `authgate users add` or a backup does for a moment.
 */
async function holdWriteLock (file: string): Promise<{ release: () => Promise<void>, child: ChildProcess }> {
  const script = `
    const Database = require('better-sqlite3')
    const db = new Database(process.argv[1])
    db.exec('begin immediate')
    process.stdout.write('locked\\n')
    process.stdin.once('data', () => { db.exec('commit'); db.close(); process.stdout.write('released\\n') })
  `
  const child = spawn(process.execPath, ['-e', script, file], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const next = async (): Promise<string> => await within(once(lines, 'line').then(([line]) => String(line)), 30_000, 'the lock holder')
  if (await next() !== 'locked') throw new Error('the lock holder did not lock')
  return {
    child,
    release: async () => {
      child.stdin!.end('go\n')
      await next()
      await once(child, 'exit')
    }
  }
}

const asApi = async (gw: TestGateway, cookie: string): Promise<Response> =>
  await http(`${gw.url}/api/thing`, { headers: { cookie, accept: 'application/json' } })

/** A sign-in through the form, as a browser (a fresh one) posts it. */
async function signIn (gw: TestGateway, username: string): Promise<Response> {
  const page = await http(`${gw.url}/login`)
  return await http(`${gw.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(setCookies(page.headers)), accept: 'text/html' },
    body: new URLSearchParams({ username, csrf_token: csrfTokenFrom(page.body), next: '/' }).toString()
  })
}

function assertUnavailablePage (t: Test, res: Response, what: string): void {
  t.equal(res.status, 503, `${what}: 503, not 500`)
  t.match(res.body, /cannot reach its database/, `${what}: the page says why`)
  t.ok(res.headers['retry-after'], `${what}: Retry-After`)
  t.notMatch(res.body, /SQLITE_|stack|\bat \S+ \(/, `${what}: nothing internal on the page`)
  t.notOk(setCookies(res.headers).authgate, `${what}: no session`)
}

const lines = (logs: Logs, msg: RegExp): Array<Record<string, unknown>> => logs.lines().filter((l) => typeof l.msg === 'string' && msg.test(l.msg))

t.test('a write lock held by another process: the sign-in waits for it, the rest of the gateway does not', async (t) => {
  const { gw, file, logs } = await sqliteGateway(t, { busyTimeoutMs: 120_000 })
  const alice = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  const lock = await holdWriteLock(file)
  t.teardown(() => { lock.child.kill() })
  const waiting = signIn(gw, 'bob')
  t.ok(await eventually(() => lines(logs, /locked by another connection/).length > 0, 30_000), 'the gateway says it is waiting for the lock')
  t.match(lines(logs, /locked by another connection/)[0], { level: 40, file })

  // The wait is a timer, not SQLite's busy handler on the event loop: everything else goes on.
  t.equal((await asApi(gw, alice)).status, 200, 'a signed-in user is proxied meanwhile')
  t.equal((await http(`${gw.url}/login`)).status, 200, 'pages are served meanwhile')
  t.equal((await http(`${gw.url}/_authgate/readyz`)).status, 200, 'and the gateway is ready (reads work under a write lock)')

  await lock.release()
  const signedIn = await within(waiting, 30_000, 'the waiting sign-in')
  t.equal(signedIn.status, 303, 'once the lock is released, the waiting sign-in goes through')
  t.ok(setCookies(signedIn.headers).authgate, 'with its session')
  t.notOk(logs.lines().some((l) => l.level === 50), 'no error logged')
})

t.test('a transaction waits for the lock before it starts (BEGIN IMMEDIATE), not halfway through', async (t) => {
  const { db, file, logs } = await sqliteGateway(t, { busyTimeoutMs: 120_000 })
  const lock = await holdWriteLock(file)
  t.teardown(() => { lock.child.kill() })
  const revoked = db.kysely.transaction().execute(async (trx) => {
    const user = await trx.insertInto('users').values({ username: 'carol', is_admin: 0, is_active: 1, created_at: new Date().toISOString() }).returning('id').executeTakeFirstOrThrow()
    await trx.updateTable('users').set({ sessions_revoked_at: new Date().toISOString() }).where('id', '=', user.id).execute()
  })
  t.ok(await eventually(() => lines(logs, /locked by another connection/).length > 0, 30_000), 'waiting for the lock')
  await lock.release()
  await t.resolves(within(revoked, 30_000, 'the transaction'), 'then it runs whole')
  const carol = await db.kysely.selectFrom('users').select('sessions_revoked_at').where('username', '=', 'carol').executeTakeFirst()
  t.ok(carol?.sessions_revoked_at, 'both of its writes are there')
})

t.test('a write lock held longer than the wait: 503, not 500, and the next attempt works', async (t) => {
  const { gw, file, logs } = await sqliteGateway(t, { busyTimeoutMs: 500 })
  const alice = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)

  const lock = await holdWriteLock(file)
  t.teardown(() => { lock.child.kill() })
  assertUnavailablePage(t, await signIn(gw, 'bob'), 'sign-in while locked')
  const failed = lines(logs, /sign-in failed: the database is unavailable/)
  t.equal(failed.length, 1, 'logged')
  t.match(failed[0], { level: 40, err: /database is locked.*SQLITE_BUSY/ }, 'with the reason')
  t.notOk(lines(logs, /^request failed$/).length > 0, 'not as a failed request (500)')
  t.equal((await asApi(gw, alice)).status, 200, 'signed-in users are still proxied')

  await lock.release()
  t.equal((await signIn(gw, 'bob')).status, 303, 'the next attempt, lock released, works')
})

/**
 * The database file cannot grow any more: the connection's max_page_count is set to its size and
 * the free space in its pages filled, so the next write that needs a page fails with SQLITE_FULL,
 * as on a full disk (the test that writes a real full disk needs root to mount a small tmpfs).
 */
async function fillDatabase (db: Db): Promise<number> {
  const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(db.kysely)
  const pages = Number(rows[0]!.page_count)
  await sql.raw(`pragma max_page_count = ${pages}`).execute(db.kysely)
  let filler = 0
  for (const size of [4000, 1000, 200, 40, 8]) {
    for (;;) {
      try {
        // Far in the future: the throttle's sweep must not delete them and free the space again.
        await db.kysely.insertInto('login_throttle').values({ key: `filler ${String(filler++).padStart(size, '0')}`, attempts: 0, reset_at: 8.64e15 }).execute()
      } catch (err) {
        if (!/full/i.test((err as Error).message)) throw err
        break
      }
    }
  }
  return pages
}

t.test('a transaction the disk fills halfway is rolled back whole, with SQLite\'s reason (not "cannot rollback")', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-sqlite-full-'))
  const db = openDatabase(`sqlite:${join(dir, 'full.db')}`)
  t.teardown(async () => { await db.close(); rmSync(dir, { recursive: true, force: true }) })
  await migrateToLatest(db)
  const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(db.kysely)
  await sql.raw(`pragma max_page_count = ${Number(rows[0]!.page_count) + 2}`).execute(db.kysely)
  let inserted = 0
  const failed = await db.kysely.transaction().execute(async (trx) => {
    await trx.insertInto('users').values({ username: 'dave', is_admin: 0, is_active: 1, created_at: new Date().toISOString() }).execute()
    for (let i = 0; i < 1000; i++) {
      await trx.insertInto('login_throttle').values({ key: `${i} ${'x'.repeat(3000)}`, attempts: 1, reset_at: 8.64e15 }).execute()
      inserted++
    }
  }).then(() => undefined, (err: unknown) => err)
  t.ok(inserted > 0, 'some writes went in before the disk was full')
  t.type(failed, DatabaseUnavailableError, 'the failure is the database\'s, for a 503')
  t.match((failed as Error).message, /full.*SQLITE_FULL/, 'in SQLite\'s words')
  t.equal((await db.kysely.selectFrom('users').select('id').where('username', '=', 'dave').execute()).length, 0, 'the first write of the transaction is gone with it')
  t.equal((await db.kysely.selectFrom('login_throttle').select('key').execute()).length, 0, 'and so are the others')
  await sql.raw('pragma max_page_count = 1000000').execute(db.kysely)
  await db.kysely.insertInto('users').values({ username: 'dave', is_admin: 0, is_active: 1, created_at: new Date().toISOString() }).execute()
  t.equal((await db.kysely.selectFrom('users').select('id').where('username', '=', 'dave').execute()).length, 1, 'the connection is usable again once there is space')
})

async function counts (db: Db): Promise<{ users: number, sessions: number }> {
  const users = await db.kysely.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  const sessions = await db.kysely.selectFrom('sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { users: Number(users.n), sessions: Number(sessions.n) }
}

t.test('the disk full: sign-ins get a 503 page, nothing is half-written, signed-in users are served, and it recovers', async (t) => {
  const { gw, db, logs } = await sqliteGateway(t)
  const alice = cookieHeader((await loginLocal(gw.url, 'alice')).cookies)
  const leaver = cookieHeader((await loginLocal(gw.url, 'leaver')).cookies)

  const pages = await fillDatabase(db)
  const before = await counts(db)
  const full = await signIn(gw, 'newcomer')
  assertUnavailablePage(t, full, 'sign-in on a full disk')
  t.match(lines(logs, /sign-in failed: the database is unavailable/)[0], { level: 40, err: /full.*SQLITE_FULL/ }, 'logged with the reason')
  t.same(await counts(db), before, 'nothing half-written: no user, no session record')
  t.equal((await db.kysely.selectFrom('users').select('id').where('username', '=', 'newcomer').execute()).length, 0, 'the self-registration left no user behind')
  const { rows: integrity } = await sql<{ integrity_check: string }>`pragma integrity_check`.execute(db.kysely)
  t.same(integrity, [{ integrity_check: 'ok' }], 'and the file is intact')

  t.equal((await asApi(gw, alice)).status, 200, 'a signed-in user is proxied')
  const refreshes = lines(logs, /revocation refresh failed/).length
  t.equal(refreshes, 0, 'the revocation list refreshes (reads work)')
  const out = await http(`${gw.url}/logout`, { method: 'POST', headers: { cookie: leaver, origin: gw.url } })
  t.equal(out.status, 303, 'logout still answers')
  t.equal(setCookies(out.headers).authgate, '', 'and clears the cookie')
  t.equal((await asApi(gw, leaver)).status, 401, 'the session is over here at once')
  t.equal((await http(`${gw.url}/_authgate/readyz`)).status, 200, 'ready: reads work')
  t.notOk(lines(logs, /^request failed$/).length > 0, 'no 500 anywhere')

  // Space again (a bigger volume, files deleted): no restart needed.
  await sql.raw(`pragma max_page_count = ${pages * 100}`).execute(db.kysely)
  t.equal((await signIn(gw, 'newcomer')).status, 303, 'sign-in works again')
  // The logout reaches the database (now, or at the next refresh if it could not be written then).
  let ended: unknown[] = []
  for (let i = 0; i < 300 && ended.length === 0; i++) {
    ended = await db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id').select('sessions.ended_at')
      .where('users.username', '=', 'leaver').where('sessions.ended_at', 'is not', null).execute()
    if (ended.length === 0) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(ended.length, 1, 'the logout\'s session record is ended in the database')
})
