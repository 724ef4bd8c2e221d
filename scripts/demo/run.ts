// `npm run demo`, composed: two demo OpenID Providers (two organisations, so the login page shows a
// button for each: OIDC_PROVIDERS), the built-in demo upstream and the real gateway (buildApp, as
// `npm start` runs it) with AUTH_METHOD=both, all on loopback, nothing kept afterwards.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { loadConfig, providerPrefix, type Config } from '../../src/config/index.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { buildApp, type Gateway } from '../../src/app.js'
import { startDemoUpstream } from '../../src/demo/upstream.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { UserRepository } from '../../src/db/users.js'
import { createLogger } from '../../src/logger.js'
import { ADMIN_GROUP, DEMO_ACCOUNTS, PARTNER_ACCOUNTS, startDemoIdp, type DemoAccount, type DemoIdpOptions } from './idp.js'

/** The demo's identity providers, in the order of their buttons (OIDC_PROVIDERS). */
export const DEMO_PROVIDERS: ReadonlyArray<{ id: string, name: string, buttonText: string, clientId: string, accounts: DemoAccount[], accent?: DemoIdpOptions['accent'] }> = [
  { id: 'corp', name: 'Demo Corp Identity Provider', buttonText: 'Sign in with Demo Corp', clientId: 'authgate-demo', accounts: DEMO_ACCOUNTS },
  // Another colour, so that a user sees at once which organisation's page they are on.
  { id: 'partner', name: 'Demo Partner Identity Provider', buttonText: 'Sign in with Demo Partner', clientId: 'authgate-demo-partner', accounts: PARTNER_ACCOUNTS, accent: { light: '#0b6e4f', dark: '#5fd4a8' } }
]

/** A local (non-SSO) account, for the form under the SSO buttons. */
export const LOCAL_ACCOUNT = { username: 'dave', password: 'dave-demo' }

/** Seconds between re-validations of an SSO session with the provider (production default: 300). */
export const DEMO_REFRESH_INTERVAL = 30

export interface DemoOptions {
  /** Gateway port on localhost (0: any free one). */
  port?: number
  /** A pino level for the gateway's log (default warn: the demo's own output stays readable). */
  logLevel?: string
  logger?: FastifyBaseLogger
  /** OIDC_REFRESH_INTERVAL in seconds (default DEMO_REFRESH_INTERVAL; tests use less). */
  refreshInterval?: number
}

/** One of the demo's running providers. */
export interface DemoProvider {
  /** Its id in OIDC_PROVIDERS (`/login/oidc?provider=<id>`). */
  id: string
  name: string
  buttonText: string
  issuer: string
  /** Its accounts, live (its /accounts page changes them). */
  accounts: DemoAccount[]
}

export interface Demo {
  /** Where to point the browser: http://localhost:<port>/ */
  url: string
  /** The first provider's issuer and accounts (Demo Corp). */
  issuer: string
  accounts: DemoAccount[]
  /** Every provider, in the order of their buttons. */
  providers: DemoProvider[]
  localAccount: typeof LOCAL_ACCOUNT
  config: Config
  gateway: Gateway
  close: () => Promise<void>
}

export class DemoRefused extends Error {
  override name = 'DemoRefused'
}

export async function startDemo (options: DemoOptions = {}): Promise<Demo> {
  if (process.env.NODE_ENV === 'production') {
    throw new DemoRefused('the demo is for development only and does not run with NODE_ENV=production (it prints passwords and uses throwaway keys)')
  }
  const port = options.port === undefined || options.port === 0 ? await freePort() : options.port
  // The gateway on "localhost" and the provider on "127.0.0.1": two sites, so neither sees the other's cookies.
  const publicUrl = `http://localhost:${port}`
  // Every provider registers the same gateway addresses; each its own client.
  const gatewayUris = {
    redirectUri: `${publicUrl}/auth/oidc/callback`,
    postLogoutRedirectUri: `${publicUrl}/login?signed_out=1`,
    // Signing out at a provider ends the gateway sessions it opened too (the gateway tells the
    // providers' logout tokens apart by their `iss`).
    backchannelLogoutUri: `${publicUrl}/auth/oidc/backchannel-logout`
  }
  const cleanups: Array<() => Promise<void> | void> = []
  const close = async (): Promise<void> => { for (const c of cleanups.reverse()) await c() }
  try {
    const providers: Array<DemoProvider & { clientId: string, clientSecret: string }> = []
    const providerEnv: Record<string, string> = { OIDC_PROVIDERS: DEMO_PROVIDERS.map((p) => p.id).join(',') }
    for (const p of DEMO_PROVIDERS) {
      const clientSecret = randomBytes(24).toString('base64url')
      const idp = await startDemoIdp({ clientId: p.clientId, clientSecret, ...gatewayUris }, { name: p.name, accounts: p.accounts, accent: p.accent })
      cleanups.push(idp.close)
      providers.push({ id: p.id, name: p.name, buttonText: p.buttonText, issuer: idp.issuer, accounts: idp.accounts, clientId: p.clientId, clientSecret })
      const prefix = providerPrefix(p.id)
      providerEnv[`${prefix}ISSUER`] = idp.issuer
      providerEnv[`${prefix}CLIENT_ID`] = p.clientId
      providerEnv[`${prefix}CLIENT_SECRET`] = clientSecret
      providerEnv[`${prefix}BUTTON_TEXT`] = p.buttonText
    }
    const dir = mkdtempSync(join(tmpdir(), 'authgate-demo-'))
    cleanups.push(() => { rmSync(dir, { recursive: true, force: true }) })

    const config = loadConfig({
      NODE_ENV: 'development',
      HOST: 'localhost',
      PORT: String(port),
      PUBLIC_URL: publicUrl,
      SECRET_KEY: randomBytes(48).toString('base64'),
      HEADER_SIGNING_SECRET: randomBytes(48).toString('base64'),
      DATABASE_URL: 'sqlite:./authgate.db',
      APP_NAME: 'authgate demo',
      AUTH_METHOD: 'both',
      LOCAL_AUTH: 'password',
      ALLOW_SELF_REGISTER: 'true',
      ADMIN_USERNAMES: '',
      ...providerEnv,
      // The rest is every provider's (OIDC_<ID>_… would set one provider's own).
      OIDC_CLIENT_AUTH_METHOD: 'client_secret_post', // as the demo providers register their clients
      OIDC_REDIRECT_URI: gatewayUris.redirectUri,
      OIDC_POST_LOGOUT_REDIRECT_URI: gatewayUris.postLogoutRedirectUri,
      OIDC_SCOPES: 'openid profile email groups',
      OIDC_ADMIN_GROUP: ADMIN_GROUP,
      // Short, so that a group changed at the provider's /accounts page shows within half a minute.
      OIDC_REFRESH_INTERVAL: String(options.refreshInterval ?? DEMO_REFRESH_INTERVAL),
      LOG_LEVEL: options.logLevel ?? 'warn'
    }, { cwd: dir, dotenv: false })

    const db = openDatabase(config.databaseUrl, { cwd: dir })
    cleanups.push(async () => { await db.close() })
    await migrateToLatest(db)
    await new UserRepository(db).create({ username: LOCAL_ACCOUNT.username, fullName: 'Dave Local', passwordHash: await hashPassword(LOCAL_ACCOUNT.password) })

    const upstream = await startDemoUpstream(config.headerSigningSecret)
    cleanups.push(upstream.close)
    const gateway = await buildApp({ config, db, upstream: upstream.url, logger: options.logger ?? createLogger(config.logLevel) })
    cleanups.push(gateway.close)
    await gateway.app.listen({ port, host: config.host })
    const first = providers[0]!
    return {
      url: `${publicUrl}/`,
      issuer: first.issuer,
      accounts: first.accounts,
      providers: providers.map(({ id, name, buttonText, issuer, accounts }) => ({ id, name, buttonText, issuer, accounts })),
      localAccount: LOCAL_ACCOUNT,
      config,
      gateway,
      close
    }
  } catch (err) {
    await close()
    throw err
  }
}

/**
 * `port` once it is known to be free on loopback, or any free one for 0 or unset: the gateway's
 * redirect URI must be known before the provider starts. EADDRINUSE when `port` is taken.
 */
export async function freePort (port = 0): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}
