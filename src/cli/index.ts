// `authgate` — the operator's command line. This module stays light: it parses the arguments,
// answers --help and --version, and imports a command's module (and its database driver,
// password hashing, configuration…) only when that command runs, so `npx authgate` is quick.
import { parseArgs } from 'node:util'
import { packageVersion } from '../version.js'
import type { CliAudit } from '../ops/audit.js'

import { UsageError, type Out } from './usage.js'

export { UsageError, type Out } from './usage.js'

const HELP = `Usage: authgate <command> [options]

Commands:
  config check [--json]          check the configuration exactly as the server does and
                                 print the settings in effect (secrets masked)
  secrets generate [--jwt-key]   print fresh SECRET_KEY and HEADER_SIGNING_SECRET lines
  migrate                        apply pending database migrations
  users <list|add|set-password|set-admin|disable|enable|mfa-reset> …
                                 manage local accounts (authgate users --help)
  sessions revoke <username>     end every current session of a user

Options:
  -h, --help                     this help; after a command, that command's help
  -v, --version                  print the version

Settings come from the environment and ./.env, as for the server (see env.example);
the commands that use the database read DATABASE_URL (default sqlite:./data/authgate.db).
The gateway itself runs with: node dist/src/main.js (npm start in a checkout).
`

const USERS_HELP = `Usage: authgate users <subcommand>

  list [--json]                        list users (never creates or migrates the database)
  add <username> [--admin] [--password]
                                       create a user; --password reads the password
                                       (prompted on a terminal, else the first line of stdin)
  set-password <username>              set a user's password (as above) and end
                                       the user's current sessions
  set-admin <username> <true|false>    false also ends the user's current sessions
  disable <username>                   refuse sign-in and end the user's sessions
  enable <username>                    allow sign-in again
  mfa-reset <username>                 remove the user's second factors (authenticator app,
                                       recovery codes, sign-in steps under way) and end
                                       the user's current sessions: for a lost phone

Database: DATABASE_URL (default sqlite:./data/authgate.db), from the environment or ./.env.
The commands that change something apply pending migrations first; list only reads.
`

const SESSIONS_HELP = `Usage: authgate sessions revoke <username>

  revoke <username>    end every current session of the user; running gateways
                       refuse them within 5 seconds

Database: DATABASE_URL (default sqlite:./data/authgate.db), from the environment or ./.env.
`

const MIGRATE_HELP = `Usage: authgate migrate

Apply pending database migrations to DATABASE_URL (default sqlite:./data/authgate.db),
creating the database if it does not exist. The gateway also does this when it starts.
`

const CONFIG_HELP = `Usage: authgate config check [--json]

Read the configuration from the environment and ./.env exactly as the server does and
print every setting in effect, with its source (environment, .env, <NAME>_FILE, default)
and secrets masked. Exits 2, with the server's own message, when the server would refuse
to start. Writes nothing: development secrets are not generated, no database is opened.
`

const SECRETS_HELP = `Usage: authgate secrets generate [--jwt-key]

Print fresh random secrets as .env lines, e.g.  authgate secrets generate >> .env

  SECRET_KEY              sessions (keep it private to the gateway)
  HEADER_SIGNING_SECRET   identity header signatures (give it to the upstream too)
  --jwt-key               also IDENTITY_JWT_KEY, an EC P-256 private key (IDENTITY_JWT=true)
`

const COMMAND_HELP: Record<string, string> = {
  users: USERS_HELP, sessions: SESSIONS_HELP, migrate: MIGRATE_HELP, config: CONFIG_HELP, secrets: SECRETS_HELP
}

/** Which options each command accepts: anything else is a usage error, not silently ignored. */
const COMMAND_OPTIONS: Record<string, string[]> = {
  'users list': ['json'],
  'users add': ['admin', 'password'],
  'config check': ['json'],
  'secrets generate': ['jwt-key']
}

// eslint-disable-next-line @typescript-eslint/explicit-function-return-type -- parseArgs' result type follows OPTIONS
function parse (argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS })
  } catch (err) {
    // node:util's messages name the option; they are the user's mistake, not a crash.
    throw new UsageError(`${(err as Error).message.replace(/\. To specify.*$/s, '')}\n\n${HELP}`)
  }
}

const OPTIONS = {
  admin: { type: 'boolean' },
  password: { type: 'boolean' },
  json: { type: 'boolean' },
  'jwt-key': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

/**
 * Runs one `authgate` command line: parses `argv` (the arguments after `authgate`), answers
 * `--help`/`--version`, and hands the command to its module (imported only then). The commands and
 * their options are the ones in HELP and the per-command help texts above; an option a command does
 * not take is refused rather than ignored.
 *
 * @param argv - e.g. `['users', 'add', 'alice', '--admin', '--password']`
 * @param out - where the command's output goes, one line per call (default: stdout)
 * @param audit - where database commands record audit events (default: JSON lines on stderr)
 * @returns the exit code: 0 done (or help asked for); 1 `authgate` or `authgate <command>` without
 *   the subcommand it needs (the help is printed); 2 from `config check` when the server would
 *   refuse to start
 * @throws UsageError for a mistake on the command line or in its input (unknown command or option,
 *   missing or extra argument, bad username or password, unknown user, unreadable DATABASE_URL):
 *   bin.ts prints its message without a stack trace and exits 2. Any other error (the database
 *   unreachable, say) exits 1 with `authgate: error: <message>`.
 * @example
 * ```sh
 * npx authgate users add alice --admin --password   # prompts for the password on a terminal
 * npx authgate config check --json
 * ```
 */
export async function run (argv: string[], out: Out = (l) => { process.stdout.write(l + '\n') }, audit?: CliAudit): Promise<number> {
  const { values: flags, positionals } = parse(argv)
  const [command, sub] = positionals
  if (flags.version === true) { out(packageVersion()); return 0 }
  if (command === 'help') { out(COMMAND_HELP[sub ?? ''] ?? HELP); return 0 }
  if (command === undefined) { out(HELP); return flags.help === true ? 0 : 1 }
  const help = COMMAND_HELP[command]
  if (help === undefined) throw new UsageError(`unknown command: ${positionals.join(' ')}\n\n${HELP}`)
  if (flags.help === true) { out(help); return 0 }
  if (sub === undefined && command !== 'migrate') { out(help); return 1 }

  const name = command === 'migrate' ? 'migrate' : `${command} ${sub}`
  const allowed = COMMAND_OPTIONS[name] ?? []
  const extra = Object.keys(flags).filter((f) => !allowed.includes(f))
  if (extra.length > 0) throw new UsageError(`${name}: unknown option ${extra.map((f) => `--${f}`).join(', ')}\n\n${help}`)
  const args = positionals.slice(command === 'migrate' ? 1 : 2)

  switch (command) {
    case 'config':
      if (sub !== 'check' || args.length > 0) break
      return await (await import('./config-check.js')).configCheck({ json: flags.json === true }, out)
    case 'secrets':
      if (sub !== 'generate' || args.length > 0) break
      return (await import('./secrets.js')).generateSecrets({ jwtKey: flags['jwt-key'] === true }, out)
    default:
      return await (await import('./database.js')).runDatabaseCommand(name, args, flags, out, audit)
  }
  throw new UsageError(`unknown command: ${positionals.join(' ')}\n\n${help}`)
}
