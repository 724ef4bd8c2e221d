// The server takes no arguments (every setting is an environment variable), but `npm start --
// --help` must answer, not start a gateway; and a flag such as --port must be refused, not ignored.
import { packageVersion } from './version.js'

const HELP = `Usage: npm start            (in a checkout; or: node dist/src/main.js)

Starts the authgate gateway. It takes no arguments: every setting is an environment
variable or a line in ./.env, e.g.

  PORT=8090 UPSTREAM_URL=http://127.0.0.1:5000 npm start

With nothing set it runs for development: on http://127.0.0.1:8080, in front of a
built-in demo application, where any username signs in.

  Every variable:                 env.example, README.md#configuration
  Check settings without starting: npx authgate config check
  Users, sessions, secrets:       npx authgate --help
`

/** What to do with the command line: start, or print and exit with this code. */
export function serverArguments (argv: string[]): { exit: number, stdout?: string, stderr?: string } | undefined {
  if (argv.length === 0) return undefined
  if (argv.some((a) => a === '--help' || a === '-h' || a === 'help')) return { exit: 0, stdout: HELP }
  if (argv.some((a) => a === '--version' || a === '-v')) return { exit: 0, stdout: packageVersion() + '\n' }
  const flag = argv[0]!
  const asVariable = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(flag)
  const hint = asVariable !== null ? ` (settings are environment variables: ${asVariable[1]!.toUpperCase().replace(/-/g, '_')}=${asVariable[2] ?? '…'} npm start)` : ''
  return { exit: 2, stderr: `authgate: unknown argument ${flag}${hint}\n\n${HELP}` }
}
