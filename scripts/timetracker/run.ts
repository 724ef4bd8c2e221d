// `npm run example:timetracker`, composed: the demo OpenID Provider, TimeTracker (a copy of a
// checkout, through authgate_timetracker) and the real gateway (buildApp, as `npm start` runs it)
// in front of it, all on loopback, nothing kept afterwards. Tests start the same thing.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { loadConfig, type Config, type Env } from '../../src/config/index.js'
import { KNOWN_VARIABLES, describeUnknownVariables, findUnknownVariables } from '../../src/config/variables.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { buildApp, type Gateway } from '../../src/app.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { UserRepository } from '../../src/db/users.js'
import { createLogger } from '../../src/logger.js'
import { ADMIN_GROUP, startDemoIdp, type DemoAccount } from '../demo/idp.js'
import { freePort } from '../demo/run.js'
import { ExampleRefused, checkTimeTrackerSetup, startTimeTracker } from './timetracker.js'

export { ExampleRefused }

/** What TimeTracker answers without a gateway session; the gateway and TimeTracker get this one list. */
export const TIMETRACKER_SKIP_AUTH_PATHS = '/api/v1/,/static/,/_health,/_ready'

/**
 * Local accounts in the gateway's database. `admin` is the name TimeTracker's own ADMIN_USERNAMES
 * promotes: here only the gateway decides (its stored flag; ADMIN_USERNAMES is empty by default).
 */
const LOCAL_ACCOUNTS = [
  { username: 'admin', password: 'admin-demo', fullName: 'Ada Admin', admin: true },
  { username: 'dave', password: 'dave-demo', fullName: 'Dave Local', admin: false }
]

/** Variables that wire the parts together: the environment cannot change them. */
const WIRING = new Set(['NODE_ENV', 'PORT', 'HOST', 'PUBLIC_URL', 'UPSTREAM_URL', 'OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET',
  'OIDC_CLIENT_SECRET_FILE', 'OIDC_CLIENT_AUTH_METHOD', 'OIDC_REDIRECT_URI', 'OIDC_POST_LOGOUT_REDIRECT_URI'])

export interface TimeTrackerExampleOptions {
  /** A TimeTracker checkout (left untouched: a copy runs). */
  checkout: string
  /** Ports on loopback; 0 or unset: any free one. */
  gatewayPort?: number
  timetrackerPort?: number
  idpPort?: number
  /** The gateway's variables (those src/config/variables.ts knows) override the example's defaults. Default: process.env. */
  env?: Env
  /** The gateway's log level (default warn), over LOG_LEVEL. */
  logLevel?: string
  logger?: FastifyBaseLogger
  /** A python3 with TimeTracker's packages (default TIMETRACKER_PYTHON, else /usr/bin/python3). */
  python?: string
  /** More variables for TimeTracker's processes. */
  timetrackerEnv?: Record<string, string>
}

export interface LocalAccount { username: string, password: string, fullName: string, admin: boolean }

export interface TimeTrackerExample {
  /** Where to point the browser: http://localhost:<gatewayPort>/ */
  url: string
  /** TimeTracker directly, http://127.0.0.1:<port> (it answers only requests the gateway signed). */
  timetrackerUrl: string
  issuer: string
  /** The demo provider's accounts, live: change `groups` and the next sign-in sees it. */
  accounts: DemoAccount[]
  localAccounts: LocalAccount[]
  headerSigningSecret: string
  /** The one skip list, as given to both (comma-separated). */
  skipAuthPaths: string
  config: Config
  gateway: Gateway
  /** The gateway's database (absolute), for the authgate CLI. */
  databaseUrl: string
  /** TimeTracker's SQLite file and everything its processes printed. */
  timetrackerDatabase: string
  timetrackerLog: string
  /** The temporary directory holding all of it (removed by close). */
  dir: string
  close: () => Promise<void>
}

export async function startTimeTrackerExample (options: TimeTrackerExampleOptions): Promise<TimeTrackerExample> {
  const env = options.env ?? process.env
  if (env['NODE_ENV'] === 'production') {
    throw new ExampleRefused('the example is for development only and does not run with NODE_ENV=production (it prints passwords and uses throwaway keys)')
  }
  const python = options.python ?? process.env.TIMETRACKER_PYTHON ?? '/usr/bin/python3'
  const checkout = resolve(options.checkout)
  checkTimeTrackerSetup(checkout, python)

  // Known before anything starts: the gateway's redirect URI goes to the provider, and TimeTracker's
  // health check must not be answered by whatever else holds its port.
  const gatewayPort = await portFor(options.gatewayPort, 'the gateway')
  const timetrackerPort = await portFor(options.timetrackerPort, 'TimeTracker')
  const idpPort = await portFor(options.idpPort, 'the demo identity provider')
  // The gateway on "localhost" and the provider on "127.0.0.1": two sites, so neither sees the other's cookies.
  const publicUrl = `http://localhost:${gatewayPort}`
  const client = {
    clientId: 'authgate-timetracker-example',
    clientSecret: randomBytes(24).toString('base64url'),
    redirectUri: `${publicUrl}/auth/oidc/callback`,
    postLogoutRedirectUri: `${publicUrl}/login?signed_out=1`
  }
  const cleanups: Array<() => Promise<void> | void> = []
  // Every part is stopped even when another fails to, and only once.
  const close = async (): Promise<void> => {
    let failure: unknown
    for (const cleanup of cleanups.splice(0).reverse()) {
      try { await cleanup() } catch (err) { failure ??= err }
    }
    if (failure !== undefined) throw failure
  }
  try {
    const dir = mkdtempSync(join(tmpdir(), 'authgate-timetracker-'))
    cleanups.push(() => { rmSync(dir, { recursive: true, force: true }) })
    const idp = await startDemoIdp(client, { port: idpPort })
    cleanups.push(idp.close)

    const defaults: Env = {
      SECRET_KEY: randomBytes(48).toString('base64'),
      HEADER_SIGNING_SECRET: randomBytes(48).toString('base64'),
      DATABASE_URL: `sqlite:${join(dir, 'authgate.db')}`,
      APP_NAME: 'TimeTracker',
      AUTH_METHOD: 'both',
      LOCAL_AUTH: 'password',
      ADMIN_USERNAMES: '',
      OIDC_SCOPES: 'openid profile email groups',
      OIDC_ADMIN_GROUP: ADMIN_GROUP,
      SKIP_AUTH_PATHS: TIMETRACKER_SKIP_AUTH_PATHS,
      LOG_LEVEL: 'warn'
    }
    const wiring: Env = {
      NODE_ENV: 'development',
      HOST: 'localhost',
      PORT: String(gatewayPort),
      PUBLIC_URL: publicUrl,
      UPSTREAM_URL: `http://127.0.0.1:${timetrackerPort}`,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: client.clientId,
      OIDC_CLIENT_SECRET: client.clientSecret,
      OIDC_CLIENT_AUTH_METHOD: 'client_secret_post', // as the demo provider registers the client
      OIDC_REDIRECT_URI: client.redirectUri,
      OIDC_POST_LOGOUT_REDIRECT_URI: client.postLogoutRedirectUri
    }
    const config = loadConfig({
      ...defaults,
      ...fromEnvironment(env, defaults),
      ...(options.logLevel !== undefined ? { LOG_LEVEL: options.logLevel } : {}),
      ...wiring
    }, { cwd: dir, dotenv: false })
    const logger = options.logger ?? createLogger(config.logLevel)
    const unknown = findUnknownVariables(Object.keys(env))
    if (unknown.length > 0) logger.warn(`unknown variables, ignored: ${describeUnknownVariables(unknown)}`)

    const skipAuthPaths = config.skipAuthPaths.join(',')
    const timetracker = await startTimeTracker({
      checkout,
      dir,
      port: timetrackerPort,
      python,
      headerSigningSecret: config.headerSigningSecret,
      skipAuthPaths: config.skipAuthPaths,
      ...(options.timetrackerEnv !== undefined ? { env: options.timetrackerEnv } : {})
    })
    cleanups.push(timetracker.close)

    const db = openDatabase(config.databaseUrl, { cwd: dir })
    cleanups.push(async () => { await db.close() })
    await migrateToLatest(db)
    const users = new UserRepository(db)
    const localAccounts: LocalAccount[] = []
    for (const account of LOCAL_ACCOUNTS) {
      await users.create({ username: account.username, fullName: account.fullName, isAdmin: account.admin, passwordHash: await hashPassword(account.password) })
      localAccounts.push({ ...account, admin: account.admin || config.adminUsernames.includes(account.username) })
    }

    const gateway = await buildApp({ config, db, upstream: config.upstreamUrl!, logger })
    cleanups.push(gateway.close)
    await gateway.app.listen({ port: gatewayPort, host: config.host })
    return {
      url: `${publicUrl}/`,
      timetrackerUrl: timetracker.url,
      issuer: idp.issuer,
      accounts: idp.accounts,
      localAccounts,
      headerSigningSecret: config.headerSigningSecret,
      skipAuthPaths,
      config,
      gateway,
      databaseUrl: config.databaseUrl.startsWith('sqlite:') ? `sqlite:${resolve(dir, config.databaseUrl.slice('sqlite:'.length))}` : config.databaseUrl,
      timetrackerDatabase: timetracker.databaseFile,
      timetrackerLog: timetracker.logFile,
      dir,
      close
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** The gateway's own variables set in `env` (the wiring aside); a `<NAME>_FILE` there replaces the default `<NAME>`. */
function fromEnvironment (env: Env, defaults: Env): Env {
  const chosen: Env = {}
  for (const name of KNOWN_VARIABLES) {
    if (WIRING.has(name) || env[name] === undefined) continue
    chosen[name] = env[name]
    const secret = name.endsWith('_FILE') ? name.slice(0, -'_FILE'.length) : undefined
    if (secret !== undefined && env[secret] === undefined && defaults[secret] !== undefined) chosen[secret] = undefined
  }
  return chosen
}

/** `port` free on loopback (any free one for 0 or unset), or a refusal naming the part that wanted it. */
async function portFor (port: number | undefined, what: string): Promise<number> {
  return await freePort(port).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'EADDRINUSE' ? Object.assign(new ExampleRefused(`port ${port} (${what}) is in use`), { code: err.code }) : err
  })
}
