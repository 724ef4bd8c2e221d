// TimeTracker itself, as `npm run example:timetracker` runs it: a copy of the checkout (its start
// compiles translations into it, and the checkout may be read-only), `flask init-db`, then gunicorn
// serving authgate_timetracker:create_app() on loopback. Its own environment, never the gateway's:
// both read DATABASE_URL, SECRET_KEY and ADMIN_USERNAMES.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, closeSync, cpSync, existsSync, lstatSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { devNull } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'

/** Something to fix before the example can run (the message says what); the CLI exits 2 on it. */
export class ExampleRefused extends Error {
  override name = 'ExampleRefused'
}

const REPO = fileURLToPath(new URL('../../', import.meta.url))

// What TimeTracker imports at runtime, by Python module, with the Debian/Ubuntu package that provides it.
const PYTHON_PACKAGES: Record<string, string> = {
  flask: 'python3-flask', flask_sqlalchemy: 'python3-flask-sqlalchemy', flask_migrate: 'python3-flask-migrate',
  flask_login: 'python3-flask-login', flask_socketio: 'python3-flask-socketio', authlib: 'python3-authlib',
  flask_wtf: 'python3-flaskext.wtf', flask_limiter: 'python3-flask-limiter', dotenv: 'python3-dotenv',
  babel: 'python3-babel', flask_babel: 'python3-flask-babel', psycopg2: 'python3-psycopg2',
  gunicorn: 'python3-gunicorn', eventlet: 'python3-eventlet', apscheduler: 'python3-apscheduler',
  reportlab: 'python3-reportlab', markdown: 'python3-markdown', bleach: 'python3-bleach',
  dateutil: 'python3-dateutil', requests: 'python3-requests', pytz: 'python3-tz', PIL: 'python3-pil',
  cryptography: 'python3-cryptography'
}

/** Refuses, with what to do, a path that is not a TimeTracker checkout or a Python without its packages. */
export function checkTimeTrackerSetup (checkout: string, python: string): void {
  if (!existsSync(join(checkout, 'app', '__init__.py'))) {
    throw new ExampleRefused(`${checkout} is not a TimeTracker checkout (it has no app/__init__.py); clone https://github.com/DRYTRIX/TimeTracker and pass its path`)
  }
  const probe = spawnSync(python, ['-c', 'import importlib.util, sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))', ...Object.keys(PYTHON_PACKAGES)], { encoding: 'utf8', timeout: 30_000 })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new ExampleRefused(`cannot run ${python} (${probe.error?.message ?? probe.stderr.trim()}); set TIMETRACKER_PYTHON to a python3 with TimeTracker's packages`)
  }
  const missing = probe.stdout.trim().split(/\s+/).filter((m) => m !== '')
  if (missing.length > 0) {
    throw new ExampleRefused(`${python} lacks TimeTracker's Python packages (${missing.join(', ')}); on Debian or Ubuntu: ` +
      `sudo apt-get install ${missing.map((m) => PYTHON_PACKAGES[m]).join(' ')}, or set TIMETRACKER_PYTHON to a python3 that has TimeTracker's requirements`)
  }
}

export interface TimeTrackerOptions {
  checkout: string
  /** A directory of its own (removed by the caller): the copy, the database and the log go there. */
  dir: string
  port: number
  python: string
  /** The gateway's HEADER_SIGNING_SECRET and SKIP_AUTH_PATHS: one value each, shared. */
  headerSigningSecret: string
  skipAuthPaths: string[]
  /** More variables for TimeTracker's processes (they win). */
  env?: Record<string, string>
  /** How long TimeTracker may take to answer /_health (default 60 s). */
  readyTimeoutMs?: number
}

export interface TimeTracker {
  /** http://127.0.0.1:<port>, TimeTracker directly (it answers nobody without the gateway's headers). */
  url: string
  /** Its SQLite database file. */
  databaseFile: string
  /** Everything its processes printed (gunicorn's and TimeTracker's log lines included). */
  logFile: string
  close: () => Promise<void>
}

export async function startTimeTracker (options: TimeTrackerOptions): Promise<TimeTracker> {
  const app = join(options.dir, 'timetracker')
  cpSync(options.checkout, app, { recursive: true, filter: (source) => basename(source) !== '.git' })
  makeWritable(app)
  const databaseFile = join(options.dir, 'timetracker.db')
  const logFile = join(options.dir, 'timetracker.log')
  const url = `http://127.0.0.1:${options.port}`
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? options.dir,
    LANG: process.env.LANG ?? 'C.UTF-8',
    // The Flask-Babel 2.0 shim, the integration, the Flask recipe it uses, TimeTracker.
    PYTHONPATH: [join(REPO, 'scripts/timetracker/python'), join(REPO, 'integrations/timetracker'), join(REPO, 'integrations/flask'), app].join(':'),
    PYTHONPYCACHEPREFIX: join(options.dir, 'pycache'), // nothing written into this repository
    PYTHONUNBUFFERED: '1',
    FLASK_APP: 'app',
    DATABASE_URL: `sqlite:///${databaseFile}`,
    SECRET_KEY: randomBytes(48).toString('base64'),
    LOG_FILE: devNull, // its log lines also go to stderr, which is logFile
    LICENSE_SERVER_ENABLED: 'false', // otherwise it reports usage to a remote server
    HEADER_SIGNING_SECRET: options.headerSigningSecret,
    SKIP_AUTH_PATHS: options.skipAuthPaths.join(','),
    ...options.env
  }
  const run = (args: string[]): ChildProcess => {
    const log = openSync(logFile, 'a')
    try {
      // Its own process group, so close() reaches gunicorn's worker too and Ctrl+C in a terminal
      // leaves it running until the gateway in front of it has stopped.
      return spawn(options.python, args, { cwd: app, env, stdio: ['ignore', log, log], detached: true })
    } finally {
      closeSync(log)
    }
  }

  const init = exitOf(run(['-m', 'flask', 'init-db']))
  const initCode = await init
  if (initCode !== 0) throw new Error(`TimeTracker's flask init-db failed (${initCode}); its last output:\n${tail(logFile)}`)

  const server = run(['-m', 'gunicorn', '--worker-class', 'eventlet', '--workers', '1', '--bind', `127.0.0.1:${options.port}`, 'authgate_timetracker:create_app()'])
  const exited = exitOf(server)
  const close = async (): Promise<void> => {
    if (server.exitCode !== null || server.signalCode !== null) return
    signalGroup(server, 'SIGTERM')
    const timer = setTimeout(() => { signalGroup(server, 'SIGKILL') }, 5000)
    await exited
    clearTimeout(timer)
  }
  try {
    await untilHealthy(url, exited, logFile, options.readyTimeoutMs ?? 60_000)
  } catch (err) {
    await close()
    throw err
  }
  return { url, databaseFile, logFile, close }
}

/** Resolves with the exit code (or signal name) of `child`, never rejects. */
async function exitOf (child: ChildProcess): Promise<number | string> {
  return await new Promise((resolve) => {
    child.once('error', (err) => { resolve(err.message) })
    child.once('exit', (code, signal) => { resolve(code ?? signal ?? 'unknown') })
  })
}

async function untilHealthy (url: string, exited: Promise<number | string>, logFile: string, timeoutMs: number): Promise<void> {
  const gone = exited.then((code) => ({ code }))
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    // connection: close, so no idle keep-alive connection holds gunicorn's graceful shutdown later.
    const healthy = fetch(`${url}/_health`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) }).then(async (r) => { await r.body?.cancel(); return r.ok }, () => false)
    const outcome = await Promise.race([healthy, gone])
    if (outcome === true) return
    if (outcome !== false) throw new Error(`TimeTracker exited (${outcome.code}) before it was ready; its last output:\n${tail(logFile)}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`TimeTracker did not answer ${url}/_health within ${timeoutMs / 1000} s; its last output:\n${tail(logFile)}`)
}

function signalGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {} // already gone
}

/** The last lines of a log file, for an error message. */
function tail (file: string, lines = 60): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `  ${l}`).join('\n')
  } catch {
    return '  (no output)'
  }
}

/** The copy of a read-only checkout must be writable (and removable). */
function makeWritable (path: string): void {
  const stat = lstatSync(path)
  if (stat.isSymbolicLink()) return
  chmodSync(path, stat.mode | 0o200)
  if (stat.isDirectory()) for (const entry of readdirSync(path)) makeWritable(join(path, entry))
}
