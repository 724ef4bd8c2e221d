// The operator's CLI, run as a process against a real database.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase } from '../src/db/index.js'
import { UserRepository } from '../src/db/users.js'
import { verifyPassword } from '../src/auth/local/password.js'

const dir = mkdtempSync(join(tmpdir(), 'authgate-cli-'))
const DATABASE_URL = `sqlite:${join(dir, 'cli.db')}`

async function cli (args: string[], stdin = ''): Promise<{ code: number, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import=tsx', 'src/cli/bin.ts', ...args], { env: { ...process.env, DATABASE_URL, CI: 'true' }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  child.stdin.end(stdin)
  const code = await new Promise<number>((resolve) => child.on('close', (c) => { resolve(c ?? -1) }))
  return { code, stdout, stderr }
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

  const db = openDatabase(DATABASE_URL)
  t.teardown(async () => { await db.close() })
  const repo = new UserRepository(db)
  const bob = await repo.findByUsername('bob')
  t.ok(await verifyPassword('another good one', bob?.passwordHash), 'password stored as a verifiable hash')
  t.equal(bob?.isAdmin, true)
  t.equal(bob?.isActive, true)
  t.ok((await repo.findByUsername('alice'))?.sessionsRevokedAt, 'revocation recorded')
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
