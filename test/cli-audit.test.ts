// The CLI's changes are audit events too: one per action, naming the account, `by: cli` and the OS
// user who ran it; on stderr, so that stdout stays the command's own output.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { run } from '../src/cli/index.js'
import { CliAudit } from '../src/ops/audit.js'
import { logCapture } from './support/log-capture.js'
import { runNode, type ProcessResult } from './support/process.js'

const dir = mkdtempSync(join(tmpdir(), 'authgate-cli-audit-'))
const DATABASE_URL = `sqlite:${join(dir, 'cli.db')}`
process.env.DATABASE_URL = DATABASE_URL

type Line = Record<string, unknown>
const core = ({ audit, user, by, reason, admin }: Line): Line =>
  Object.fromEntries(Object.entries({ audit, user, by, reason, admin }).filter(([, v]) => v !== undefined))

/** The command run in this process, its events captured. */
async function cli (...argv: string[]): Promise<{ code: number, events: Line[] }> {
  const capture = logCapture('info')
  const code = await run(argv, () => {}, new CliAudit(capture.logger))
  return { code, events: capture.lines() }
}

async function cliProcess (args: string[], stdin: string, env: Record<string, string> = {}): Promise<ProcessResult> {
  return await runNode('src/cli/bin.ts', args, { env: { ...process.env, DATABASE_URL, ...env }, stdin })
}

t.test('each command that changes something is one or two events', async (t) => {
  const steps: Array<[string[], Line[]]> = [
    [['users', 'add', 'alice', '--admin'], [
      { audit: 'user-created', user: 'alice', by: 'cli', admin: true },
      { audit: 'admin-granted', user: 'alice', by: 'cli' }
    ]],
    [['users', 'add', 'bob'], [{ audit: 'user-created', user: 'bob', by: 'cli', admin: false }]],
    [['users', 'set-admin', 'bob', 'true'], [{ audit: 'admin-granted', user: 'bob', by: 'cli' }]],
    [['users', 'set-admin', 'bob', 'false'], [
      { audit: 'admin-revoked', user: 'bob', by: 'cli' },
      { audit: 'sessions-revoked', user: 'bob', by: 'cli', reason: 'admin-revoked' }
    ]],
    [['users', 'disable', 'bob'], [{ audit: 'user-disabled', user: 'bob', by: 'cli' }]],
    [['users', 'enable', 'bob'], [{ audit: 'user-enabled', user: 'bob', by: 'cli' }]],
    [['sessions', 'revoke', 'alice'], [{ audit: 'sessions-revoked', user: 'alice', by: 'cli', reason: 'requested' }]],
    [['users', 'mfa-reset', 'bob'], [
      { audit: 'second-factors-reset', user: 'bob', by: 'cli', reason: 'none-enrolled' },
      { audit: 'sessions-revoked', user: 'bob', by: 'cli', reason: 'mfa-reset' }
    ]],
    [['users', 'list'], []],
    [['migrate'], []]
  ]
  for (const [argv, expected] of steps) {
    const { code, events } = await cli(...argv)
    t.equal(code, 0, argv.join(' '))
    t.same(events.map(core), expected, argv.join(' '))
    for (const event of events) {
      t.equal(event.osUser, userInfo().username, 'who ran it')
      t.equal(event.level, 30)
    }
  }
})

t.test('a refused command is not an event', async (t) => {
  await t.rejects(cli('users', 'disable', 'nobody'), /no such user/)
  await t.rejects(cli('users', 'add', 'alice'), /already exists/)
  const capture = logCapture('info')
  await run(['users', 'enable', 'nobody'], () => {}, new CliAudit(capture.logger)).catch(() => {})
  t.same(capture.lines(), [])
})

t.test('as a process: JSON lines on stderr, the command\'s output alone on stdout; LOG_LEVEL=silent turns them off', async (t) => {
  const set = await cliProcess(['users', 'set-password', 'alice'], 'a good password\n', { LOG_LEVEL: 'error' })
  t.equal(set.code, 0, set.stderr)
  t.match(set.stdout, /^password set for alice; their current sessions end within 5 seconds\n$/, 'stdout: the command\'s own line only')
  const lines = set.stderr.trim().split('\n').map((l) => JSON.parse(l) as Line)
  t.same(lines.map(core), [
    { audit: 'password-set', user: 'alice', by: 'cli' },
    { audit: 'sessions-revoked', user: 'alice', by: 'cli', reason: 'password-set' }
  ], 'written at info even with LOG_LEVEL=error')
  t.notOk(set.stderr.includes('a good password'), 'never the password')

  const quiet = await cliProcess(['users', 'disable', 'alice'], '', { LOG_LEVEL: 'silent' })
  t.equal(quiet.code, 0)
  t.equal(quiet.stderr, '')
})
