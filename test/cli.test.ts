// The operator's CLI, run as a process against a real database.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UserRepository } from '../src/db/users.js'
import { verifyPassword } from '../src/auth/local/password.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { createTestDatabase, startGateway } from './support/gateway.js'
import { runNode, type ProcessResult } from './support/process.js'
import { cookieHeader, http, loginLocal } from './support/http.js'

const dir = mkdtempSync(join(tmpdir(), 'authgate-cli-'))
// A SQLite file, or with TEST_DATABASE=postgres a PostgreSQL schema (named in the URL, for the CLI).
const database = await createTestDatabase(dir)
t.teardown(database.drop)
const DATABASE_URL = database.url

async function cli (args: string[], stdin = ''): Promise<ProcessResult> {
  return await runNode('src/cli/bin.ts', args, { env: { ...process.env, DATABASE_URL, CI: 'true' }, stdin })
}

t.test('migrate, add, list, passwords, admin, disable, enable, revoke', async (t) => {
  t.match((await cli(['migrate'])).stdout, /applied: 0001_users/)
  t.match((await cli(['migrate'])).stdout, /up to date/)

  const added = await cli(['users', 'add', 'Alice', '--admin', '--password'], 'a good password\n')
  t.equal(added.code, 0, added.stderr)
  t.match(added.stdout, /created alice \(admin, password\)/)
  t.equal((await cli(['users', 'add', 'alice'])).code, 2, 'duplicate refused')
  t.equal((await cli(['users', 'add', 'bob', '--password'], 'short\n')).code, 2, 'weak password refused')
  t.equal((await cli(['users', 'add', 'bad name'])).code, 2, 'invalid username refused')
  t.equal((await cli(['users', 'add', 'bob'])).code, 0)
  const lookalike = await cli(['users', 'add', 'ａｌｉｃｅ'])
  t.equal(lookalike.code, 2, 'a fullwidth look-alike is refused, not folded onto alice')
  t.match(lookalike.stderr, /look like other characters/)
  const disable = await cli(['users', 'disable', 'ｂｏｂ'])
  t.equal(disable.code, 2, 'an operator command never reaches another account through folding either')
  t.match(disable.stderr, /look like other characters/)

  const list = await cli(['users', 'list', '--json'])
  const users = JSON.parse(list.stdout) as Array<{ username: string, isAdmin: boolean, hasPassword: boolean, passwordHash?: string }>
  t.same(users.map((u) => [u.username, u.isAdmin, u.hasPassword]), [['alice', true, true], ['bob', false, false]])
  t.notOk(list.stdout.includes('scrypt$'), 'hashes never printed')

  t.equal((await cli(['users', 'set-password', 'bob'], 'another good one\n')).code, 0)
  t.equal((await cli(['users', 'set-admin', 'bob', 'true'])).code, 0)
  t.equal((await cli(['users', 'disable', 'bob'])).code, 0)
  t.match((await cli(['users', 'list'])).stdout, /bob \(admin, disabled, password\)/)
  t.equal((await cli(['users', 'enable', 'bob'])).code, 0)
  t.equal((await cli(['sessions', 'revoke', 'alice'])).code, 0)

  const db = database.open()
  t.teardown(async () => { await db.close() })
  const repo = new UserRepository(db)
  const bob = await repo.findByUsername('bob')
  t.ok(await verifyPassword('another good one', bob?.passwordHash), 'password stored as a verifiable hash')
  t.equal(bob?.isAdmin, true)
  t.equal(bob?.isActive, true)
  t.ok((await repo.findByUsername('alice'))?.sessionsRevokedAt, 'revocation recorded')
})

t.test('a demotion or a new password ends the user\'s sessions at a running gateway', async (t) => {
  const db = database.open()
  const gw = await startGateway({ LOCAL_AUTH: 'password' }, { db, revocationRefreshMs: 100 })
  t.teardown(async () => { await gw.close(); await db.close() })
  t.equal((await cli(['users', 'add', 'carol', '--admin', '--password'], 'carol password\n')).code, 0)
  t.equal((await cli(['users', 'add', 'dave', '--password'], 'dave password\n')).code, 0)
  const carol = cookieHeader((await loginLocal(gw.url, 'carol', { password: 'carol password' })).cookies)
  const dave = cookieHeader((await loginLocal(gw.url, 'dave', { password: 'dave password' })).cookies)
  const status = async (cookie: string): Promise<number> => (await http(`${gw.url}/_authgate/auth`, { headers: { cookie } })).status
  t.equal(await status(carol), 200)
  t.equal(await status(dave), 200)
  // No waiting for the next second: a revocation in the sessions' own issue second ends them too
  // (their records are ended with it; the cutoff alone refuses only earlier seconds).
  const demoted = await cli(['users', 'set-admin', 'carol', 'false'])
  t.equal(demoted.code, 0, demoted.stderr)
  t.match(demoted.stdout, /no longer an administrator; their current sessions end/)
  const reset = await cli(['users', 'set-password', 'dave'], 'a new dave password\n')
  t.equal(reset.code, 0, reset.stderr)
  // The CLI is another process: the gateway learns of its changes at its next refresh (every 100 ms).
  await sleep(500)
  t.equal(await status(carol), 401, 'the demoted admin\'s session no longer carries X-Admin: true')
  t.equal(await status(dave), 401, 'a session from before the new password is over')
  // Possibly still the revocation's second: a sign-in after it is not caught by it (the cutoff is strict).
  const again = await loginLocal(gw.url, 'carol', { password: 'carol password' })
  const fresh = await http(`${gw.url}/_authgate/auth`, { headers: { cookie: cookieHeader(again.cookies) } })
  t.equal(fresh.headers['x-admin'], 'false', 'signed in again: not an admin')
  t.equal((await cli(['users', 'set-admin', 'carol', 'true'])).code, 0)
  // Several refreshes, none of which may end the session.
  await sleep(500)
  t.equal((await http(`${gw.url}/_authgate/auth`, { headers: { cookie: cookieHeader(again.cookies) } })).status, 200, 'a promotion ends nothing')
})

t.test('errors are clear and exit non-zero', async (t) => {
  const unknown = await cli(['users', 'disable', 'ghost'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /no such user: ghost/)
  t.equal((await cli(['frobnicate'])).code, 2)
  const help = await cli([])
  t.equal(help.code, 1)
  t.match(help.stdout, /sessions revoke <username>/)
  t.equal((await cli(['--help'])).code, 0)
})
