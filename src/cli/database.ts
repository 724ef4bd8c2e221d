// The commands on the gateway's database: migrate, users …, sessions revoke. Writing commands apply
// pending migrations first (as a starting gateway would); `users list` only reads, and refuses a
// database that does not exist or is not migrated rather than creating one at a mistyped path.
import { createInterface } from 'node:readline'
import { createReader, readEnvironment } from '../config/environment.js'
import { maskDatabaseUrl, parseDatabase, type DatabaseConfig } from '../config/database.js'
import { DatabaseMissingError, describeDatabaseError, openDatabase, type Db } from '../db/index.js'
import { migrateToLatest, pendingMigrations } from '../db/migrate.js'
import { UserRepository, type User } from '../db/users.js'
import { checkUsername, usernameProblemMessage } from '../db/username.js'
import { checkNewPassword, hashPassword } from '../auth/local/password.js'
import { CliAudit } from '../ops/audit.js'
import { SecondFactorRepository } from '../db/second-factors.js'
import { UsageError, type Out } from './usage.js'

const READ_ONLY = new Set(['users list'])

async function readPassword (): Promise<string> {
  if (process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true })
    // Do not echo what is typed.
    const write = rl as unknown as { _writeToOutput: (s: string) => void }
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

/**
 * DATABASE_URL and the DATABASE_* settings as the server reads them (environment over ./.env, or
 * DATABASE_URL_FILE), checked as the server checks them: the same pool, timeouts and TLS.
 */
function databaseConfig (): DatabaseConfig {
  const { values, problems } = readEnvironment(process.env)
  const database = parseDatabase(createReader(values, problems), process.cwd())
  if (problems.length > 0) throw new UsageError(problems.map((p) => `${p.name}: ${p.message}`).join('\n'))
  return database as DatabaseConfig
}

/** Open for a command: a writing one migrates (creating the database if need be), a reading one touches nothing. */
async function open (command: string): Promise<{ db: Db, applied: string[] }> {
  const { databaseUrl: url, postgres } = databaseConfig()
  if (!READ_ONLY.has(command)) {
    const db = openDatabase(url, { postgres })
    try {
      return { db, applied: await migrateToLatest(db) }
    } catch (err) {
      await db.close()
      throw new Error(describeDatabaseError(err, url, postgres))
    }
  }
  let db: Db
  try {
    db = openDatabase(url, { readOnly: true, postgres })
  } catch (err) {
    if (err instanceof DatabaseMissingError) {
      throw new UsageError(`${err.message} (DATABASE_URL=${url}); check DATABASE_URL, or create the database with: authgate migrate`)
    }
    throw err
  }
  try {
    const { pending, total } = await pendingMigrations(db)
    if (pending.length === total) {
      throw new UsageError(`the database at ${maskDatabaseUrl(url)} has no authgate tables; check DATABASE_URL, or create them with: authgate migrate`)
    }
    if (pending.length > 0) {
      throw new UsageError(`the database at ${maskDatabaseUrl(url)} is not up to date (pending migrations: ${pending.join(', ')}); ` +
        'check DATABASE_URL, or apply them with: authgate migrate')
    }
  } catch (err) {
    await db.close()
    throw err instanceof UsageError ? err : new Error(describeDatabaseError(err, url, postgres))
  }
  return { db, applied: [] }
}

/**
 * The commands on the gateway's database (DATABASE_URL from the environment, ./.env or
 * DATABASE_URL_FILE; default sqlite:./data/authgate.db). Arguments are checked before the database is
 * opened; every command but `users list` first applies pending migrations (creating the database if
 * need be); every change is recorded as an audit event.
 *
 * | command | what it does |
 * | --- | --- |
 * | `migrate` | applies pending migrations; prints them, or "database is up to date" |
 * | `users list [--json]` | lists users (name, admin, disabled, password, sso, last sign-in); never creates or migrates the database, and refuses one that is missing or not up to date |
 * | `users add <username> [--admin] [--password]` | creates a user; `--password` reads it (prompted on a terminal, else the first line of stdin) |
 * | `users set-password <username>` | sets the password (read as above) and ends the user's sessions |
 * | `users set-admin <username> <true\|false>` | grants or removes admin; `false` also ends the user's sessions |
 * | `users disable <username>`, `users enable <username>` | refuses sign-in (and ends the sessions), or allows it again |
 * | `users mfa-reset <username>` | removes the user's second factors (LOCAL_MFA) and ends their sessions |
 * | `sessions revoke <username>` | ends every current session of the user |
 *
 * Running gateways refuse ended sessions within 5 seconds.
 *
 * @param command - `migrate` or `<group> <subcommand>`, e.g. `users add`
 * @param args - the positional arguments after it, e.g. `['alice']`
 * @param flags - the options index.ts allowed for this command
 * @param out - the command's result (stdout)
 * @param audit - where audit events go (default: JSON lines on stderr at LOG_LEVEL)
 * @returns 0 when done
 * @throws UsageError (exit 2): unknown command, missing or extra argument, a username the gateway
 *   would refuse (look-alike characters, spaces around it), `set-admin` without true/false, a
 *   password shorter than 8 or longer than 1024 characters, an existing user for `add`, no such user, a bad
 *   DATABASE_URL, or for `users list` a missing or unmigrated database. Database errors are thrown
 *   as they are (exit 1).
 * @example
 * ```sh
 * printf '%s\n' 'correct horse battery staple' | npx authgate users set-password alice
 * npx authgate sessions revoke alice
 * ```
 */
export async function runDatabaseCommand (command: string, args: string[], flags: { admin?: boolean, password?: boolean, json?: boolean }, out: Out, audit?: CliAudit): Promise<number> {
  const [arg, arg2] = args
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
  /** Each command and how many arguments it takes. */
  const ARGUMENTS: Record<string, number> = { migrate: 0, 'users list': 0, 'users add': 1, 'users set-password': 1, 'users set-admin': 2, 'users disable': 1, 'users enable': 1, 'users mfa-reset': 1, 'sessions revoke': 1 }
  const expected = ARGUMENTS[command]
  if (expected === undefined) throw new UsageError(`unknown command: ${command}\n\nSee: authgate ${command.split(' ')[0]!} --help`)
  if (args.length > expected) throw new UsageError(`${command}: unexpected argument ${args[expected]!}\n\nSee: authgate ${command.split(' ')[0]!} --help`)
  // Arguments are checked before the database is opened: a mistake must not create or migrate anything.
  const username = command === 'migrate' || command === 'users list' ? '' : usernameArg(arg)
  if (command === 'users set-admin' && arg2 !== 'true' && arg2 !== 'false') throw new UsageError('users set-admin <username> <true|false>')

  const { db, applied } = await open(command)
  // Every change is an audit event (ops/audit.ts), on stderr.
  const record = audit ?? CliAudit.toStderr(readEnvironment(process.env).values.LOG_LEVEL?.trim())
  try {
    const users = new UserRepository(db)
    switch (command) {
      case 'migrate':
        out(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'database is up to date')
        return 0
      case 'users list': {
        const list = await users.list()
        if (flags.json === true) out(JSON.stringify(list.map(({ passwordHash, ...u }) => ({ ...u, hasPassword: passwordHash !== null })), null, 2))
        else if (list.length === 0) out('no users')
        else list.forEach((u) => { out(describe(u)) })
        return 0
      }
      case 'users add': {
        const passwordHash = flags.password === true ? await newPasswordHash() : null
        const { user, created } = await users.create({ username, isAdmin: flags.admin === true, passwordHash })
        if (!created) throw new UsageError(`user already exists: ${username}`)
        record.record({ audit: 'user-created', user: username, admin: user.isAdmin })
        if (user.isAdmin) record.record({ audit: 'admin-granted', user: username })
        out(`created ${describe(user)}`)
        return 0
      }
      case 'users set-password': {
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
        const enable = command === 'users enable'
        mustExist(await users.setActive(username, enable), username)
        record.record({ audit: enable ? 'user-enabled' : 'user-disabled', user: username })
        out(`${username} ${enable ? 'enabled' : 'disabled; their sessions end within 5 seconds'}`)
        return 0
      }
      case 'users mfa-reset': {
        const user = await users.findByUsername(username)
        if (user === undefined) throw new UsageError(`no such user: ${username}`)
        // A lost or stolen phone: whoever holds it must not stay signed in either.
        const had = await new SecondFactorRepository(db).removeAllOf(user.id)
        await users.revokeSessions(username)
        record.record({ audit: 'second-factors-reset', user: username, reason: had ? 'requested' : 'none-enrolled' })
        record.record({ audit: 'sessions-revoked', user: username, reason: 'mfa-reset' })
        out(had
          ? `second factors of ${username} removed; their sessions end within 5 seconds, and they sign in with their password (then enrol again)`
          : `${username} had no second factor; their sessions end within 5 seconds`)
        return 0
      }
      default: { // sessions revoke
        mustExist(await users.revokeSessions(username), username)
        record.record({ audit: 'sessions-revoked', user: username, reason: 'requested' })
        out(`sessions of ${username} revoked; gateways refuse them within 5 seconds`)
        return 0
      }
    }
  } finally {
    await db.close()
  }
}
