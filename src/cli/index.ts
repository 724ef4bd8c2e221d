// `authgate` — the operator's command line: migrations, users and sessions, on the configured database.
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { readEnvironment } from '../config/index.js'
import { openDatabase, type Db } from '../db/index.js'
import { migrateToLatest } from '../db/migrate.js'
import { UserRepository, type User } from '../db/users.js'
import { checkUsername, usernameProblemMessage } from '../db/username.js'
import { checkNewPassword, hashPassword } from '../auth/local/password.js'
import { CliAudit } from '../ops/audit.js'

const HELP = `Usage: authgate <command>

Commands:
  migrate                              apply pending database migrations
  users list [--json]                  list users
  users add <username> [--admin] [--password]
                                       create a user; --password reads the password
                                       (prompted on a terminal, else the first line of stdin)
  users set-password <username>        set a user's password (as above) and end
                                       the user's current sessions
  users set-admin <username> <true|false>
                                       false also ends the user's current sessions
  users disable <username>             refuse sign-in and end the user's sessions
  users enable <username>              allow sign-in again
  sessions revoke <username>           end every current session of the user
                                       (gateways apply it within 5 seconds)

Configuration: DATABASE_URL (default sqlite:./data/authgate.db), from the environment or ./.env.
`

export class UsageError extends Error {}

async function readPassword (): Promise<string> {
  if (process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true })
    // Do not echo what is typed.
    const write = (rl as unknown as { _writeToOutput: (s: string) => void })
    write._writeToOutput = () => {}
    process.stdout.write('Password: ')
    const answer = await new Promise<string>((resolve) => rl.question('', resolve))
    rl.close()
    process.stdout.write('\n')
    return answer
  }
  let input = ''
  for await (const chunk of process.stdin) input += String(chunk)
  return input.split(/\r?\n/, 1)[0] ?? ''
}

async function newPasswordHash (): Promise<string> {
  const password = await readPassword()
  const problem = checkNewPassword(password)
  if (problem !== undefined) throw new UsageError(`password ${problem}`)
  return await hashPassword(password)
}

function describe (user: User): string {
  const flags = [user.isAdmin ? 'admin' : '', user.isActive ? '' : 'disabled', user.passwordHash !== null ? 'password' : '', user.oidcSub !== null ? 'sso' : ''].filter(Boolean)
  return `${user.username}${flags.length > 0 ? ` (${flags.join(', ')})` : ''}${user.lastLoginAt !== null ? `  last sign-in ${user.lastLoginAt.toISOString()}` : ''}`
}

export async function run (argv: string[], out: (line: string) => void = (l) => { process.stdout.write(l + '\n') }, audit?: CliAudit): Promise<number> {
  const { values: flags, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { admin: { type: 'boolean' }, password: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }
  })
  const [command, sub, arg, arg2] = positionals
  if (flags.help === true || command === undefined || command === 'help') { out(HELP); return flags.help === true || command === 'help' ? 0 : 1 }

  const { values: env, problems } = readEnvironment(process.env)
  if (problems.length > 0) throw new UsageError(problems.map((p) => `${p.name}: ${p.message}`).join('\n'))
  const db: Db = openDatabase(env.DATABASE_URL?.trim() || 'sqlite:./data/authgate.db')
  // Every change is an audit event (ops/audit.ts), on stderr.
  const record = audit ?? CliAudit.toStderr(env.LOG_LEVEL?.trim())
  try {
    const applied = await migrateToLatest(db)
    if (command === 'migrate') { out(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'database is up to date'); return 0 }
    const users = new UserRepository(db)
    const need = (value: string | undefined, what: string): string => {
      if (value === undefined) throw new UsageError(`missing <${what}>`)
      return value
    }
    /** The stored name for an argument: lower-cased, never folded (a look-alike never reaches another user). */
    const usernameArg = (value: string | undefined): string => {
      const checked = checkUsername(need(value, 'username'))
      if (!checked.ok) throw new UsageError(`username: ${usernameProblemMessage(checked.problem)}`)
      return checked.username
    }
    const mustExist = (found: boolean, username: string): void => {
      if (!found) throw new UsageError(`no such user: ${username}`)
    }
    switch (`${command} ${sub ?? ''}`) {
      case 'users list': {
        const list = await users.list()
        if (flags.json === true) out(JSON.stringify(list.map(({ passwordHash, ...u }) => ({ ...u, hasPassword: passwordHash !== null })), null, 2))
        else if (list.length === 0) out('no users')
        else list.forEach((u) => { out(describe(u)) })
        return 0
      }
      case 'users add': {
        const username = usernameArg(arg)
        const passwordHash = flags.password === true ? await newPasswordHash() : null
        const { user, created } = await users.create({ username, isAdmin: flags.admin === true, passwordHash })
        if (!created) throw new UsageError(`user already exists: ${username}`)
        record.record({ audit: 'user-created', user: username, admin: user.isAdmin })
        if (user.isAdmin) record.record({ audit: 'admin-granted', user: username })
        out(`created ${describe(user)}`)
        return 0
      }
      case 'users set-password': {
        const username = usernameArg(arg)
        mustExist((await users.findByUsername(username)) !== undefined, username)
        await users.setPasswordHash(username, await newPasswordHash())
        // A new password is often a response to a leaked one: whoever used it is signed out too.
        await users.revokeSessions(username)
        record.record({ audit: 'password-set', user: username })
        record.record({ audit: 'sessions-revoked', user: username, reason: 'password-set' })
        out(`password set for ${username}; their current sessions end within 5 seconds`)
        return 0
      }
      case 'users set-admin': {
        const username = usernameArg(arg)
        if (arg2 !== 'true' && arg2 !== 'false') throw new UsageError('users set-admin <username> <true|false>')
        mustExist(await users.setAdmin(username, arg2 === 'true'), username)
        // Sessions carry the admin flag they were issued with: a demotion must not wait for them to expire.
        if (arg2 === 'false') await users.revokeSessions(username)
        record.record({ audit: arg2 === 'true' ? 'admin-granted' : 'admin-revoked', user: username })
        if (arg2 === 'false') record.record({ audit: 'sessions-revoked', user: username, reason: 'admin-revoked' })
        out(arg2 === 'true'
          ? `${username} is now an administrator (current sessions pick it up at the next sign-in)`
          : `${username} is no longer an administrator; their current sessions end within 5 seconds`)
        return 0
      }
      case 'users disable':
      case 'users enable': {
        const username = usernameArg(arg)
        const enable = sub === 'enable'
        mustExist(await users.setActive(username, enable), username)
        record.record({ audit: enable ? 'user-enabled' : 'user-disabled', user: username })
        out(`${username} ${enable ? 'enabled' : 'disabled; their sessions end within 5 seconds'}`)
        return 0
      }
      case 'sessions revoke': {
        const username = usernameArg(arg)
        mustExist(await users.revokeSessions(username), username)
        record.record({ audit: 'sessions-revoked', user: username, reason: 'requested' })
        out(`sessions of ${username} revoked; gateways refuse them within 5 seconds`)
        return 0
      }
      default:
        throw new UsageError(`unknown command: ${positionals.join(' ')}\n\n${HELP}`)
    }
  } finally {
    await db.close()
  }
}
