// The effective configuration, one line per variable, for `authgate config check`: what the server
// would use (defaults included) and where each value came from. Secrets never appear, not even in
// part: only whether they are set, their length and their source.
import type { Config } from './index.js'
import type { Env } from './environment.js'
import { maskDatabaseUrl } from './database.js'
import { KNOWN_VARIABLES, SECRET_VARIABLES } from './variables.js'

export interface Setting {
  name: string
  /** The value in effect (masked for secrets); undefined: not used by this configuration. */
  value: string | undefined
  /** environment, .env, <NAME>_FILE, default, or generated (development secrets). */
  source: string
}

type Describe = (c: Config) => string | undefined

const seconds = (ms: number): string => String(ms / 1000)
const masked = (value: string | undefined): string | undefined => value === undefined ? undefined : `[secret, ${value.length} characters]`
const oidc = (f: (o: NonNullable<Config['oidc']>) => string | undefined): Describe => (c) => c.oidc === undefined ? undefined : f(c.oidc) ?? ''
const pg = (f: (p: NonNullable<Config['postgres']>) => string | undefined): Describe => (c) => c.postgres === undefined ? undefined : f(c.postgres) ?? ''
const jwt = (f: (j: NonNullable<Config['identityJwt']>) => string | undefined): Describe => (c) => c.identityJwt === undefined ? undefined : f(c.identityJwt) ?? ''

/** How each variable shows in the effective configuration (a unit test checks every variable has one). */
export const DESCRIBE: Record<string, Describe> = {
  NODE_ENV: (c) => c.production ? 'production' : 'development',
  PORT: (c) => String(c.port),
  HOST: (c) => c.host,
  PUBLIC_URL: (c) => c.publicUrl?.origin ?? '',
  UPSTREAM_URL: (c) => c.upstreamUrl?.href ?? '',
  DATABASE_URL: (c) => maskDatabaseUrl(c.databaseUrl),
  DATABASE_POOL_SIZE: pg((p) => String(p.poolSize)),
  DATABASE_CONNECT_TIMEOUT: pg((p) => seconds(p.connectTimeoutMs)),
  DATABASE_STATEMENT_TIMEOUT: pg((p) => seconds(p.statementTimeoutMs)),
  DATABASE_CA_FILE: pg((p) => p.caFrom === 'DATABASE_CA_FILE' ? p.caFile : ''),
  SECRET_KEY: (c) => masked(c.secretKeys[0]),
  SECRET_KEY_PREVIOUS: (c) => c.secretKeys.length > 1 ? `[${c.secretKeys.length - 1} secret(s)]` : '',
  HEADER_SIGNING_SECRET: (c) => masked(c.headerSigningSecret),
  AUTH_METHOD: (c) => c.authMethod,
  LOCAL_AUTH: (c) => c.authMethod === 'oidc' ? undefined : c.localAuth,
  ALLOW_SELF_REGISTER: (c) => String(c.allowSelfRegister),
  ADMIN_USERNAMES: (c) => c.adminUsernames.join(','),
  OIDC_ISSUER: oidc((o) => o.issuer.href),
  OIDC_CLIENT_ID: oidc((o) => o.clientId),
  OIDC_CLIENT_SECRET: oidc((o) => masked(o.clientSecret)),
  OIDC_CLIENT_AUTH_METHOD: oidc((o) => o.clientAuthMethod),
  OIDC_REDIRECT_URI: oidc((o) => o.redirectUri.href),
  OIDC_SCOPES: oidc((o) => o.scopes),
  OIDC_USERNAME_CLAIM: oidc((o) => o.usernameClaim),
  OIDC_FULL_NAME_CLAIM: oidc((o) => o.fullNameClaim),
  OIDC_EMAIL_CLAIM: oidc((o) => o.emailClaim),
  OIDC_GROUPS_CLAIM: oidc((o) => o.groupsClaim),
  OIDC_ADMIN_GROUP: oidc((o) => o.adminGroup),
  OIDC_ADMIN_EMAILS: oidc((o) => o.adminEmails.join(',')),
  OIDC_POST_LOGOUT_REDIRECT_URI: oidc((o) => o.postLogoutRedirectUri?.href),
  OIDC_BUTTON_TEXT: oidc((o) => o.buttonText),
  OIDC_REFRESH_INTERVAL: oidc((o) => String(o.refreshInterval)),
  ALLOWED_EMAIL_DOMAINS: (c) => c.signInAllowList.emailDomains.join(','),
  ALLOWED_EMAILS: (c) => c.signInAllowList.emails.join(','),
  ALLOWED_GROUPS: (c) => c.signInAllowList.groups.join(','),
  ACCESS_RULES: (c) => c.accessRules.map((rule) => `${rule.path}=${rule.requirements.map(describeRequirement).join(',')}`).join(';'),
  SESSION_COOKIE_SECURE: (c) => String(c.sessionCookieSecure),
  SESSION_MAX_AGE: (c) => String(c.sessionMaxAge),
  TRUST_PROXY: (c) => Array.isArray(c.trustProxy) ? c.trustProxy.join(',') : String(c.trustProxy),
  SKIP_AUTH_PATHS: (c) => c.skipAuthPaths.join(','),
  UPSTREAM_POOL_SIZE: (c) => String(c.upstreamPoolSize),
  CLIENT_HEADER_TIMEOUT: (c) => seconds(c.clientLimits.headerTimeoutMs),
  CLIENT_BODY_IDLE_TIMEOUT: (c) => seconds(c.clientLimits.bodyIdleTimeoutMs),
  CLIENT_BODY_MIN_RATE: (c) => String(c.clientLimits.bodyMinBytesPerSecond),
  CLIENT_MAX_CONCURRENT_REQUESTS: (c) => String(c.clientLimits.maxConcurrentRequests),
  IDENTITY_JWT: (c) => String(c.identityJwt !== undefined),
  IDENTITY_JWT_KEY: jwt(() => '[secret, EC P-256 private key]'),
  IDENTITY_JWT_KEY_PREVIOUS: jwt((j) => j.previousKeys.length > 0 ? `[${j.previousKeys.length} public key(s)]` : ''),
  IDENTITY_JWT_AUDIENCE: jwt((j) => j.audience ?? '(the upstream\'s origin)'),
  LOG_LEVEL: (c) => c.logLevel,
  LOG_FORMAT: (c) => c.logFormat,
  METRICS_PORT: (c) => c.metrics !== undefined ? String(c.metrics.port) : '(metrics on the public port)',
  METRICS_HOST: (c) => c.metrics?.host ?? '',
  SHUTDOWN_GRACE_PERIOD: (c) => seconds(c.shutdownGraceMs),
  APP_NAME: (c) => c.appName,
  LOGO_URL: (c) => c.logo !== undefined && c.logo.file === undefined ? c.logo.src : '',
  LOGO_FILE: (c) => c.logo?.file?.path ?? ''
}

function describeRequirement (r: Config['accessRules'][number]['requirements'][number]): string {
  switch (r.kind) {
    case 'admin': return 'admin'
    case 'user': return `user:${r.username}`
    case 'group': return `group:${r.group}`
    case 'email-domain': return `email-domain:${r.domain}`
  }
}

const SECRETS: ReadonlySet<string> = new Set(SECRET_VARIABLES)

/** Every variable the gateway reads, without the `<NAME>_FILE` forms of the secrets. */
export function settingNames (): string[] {
  return [...KNOWN_VARIABLES].filter((name) => !(name.endsWith('_FILE') && SECRETS.has(name.slice(0, -'_FILE'.length))))
}

/**
 * `env` is the process environment and `values` what readEnvironment made of it (with .env and
 * the `_FILE` secrets), so each value's source can be told.
 */
export function describeConfig (config: Config, env: Env, values: Env): Setting[] {
  const isSet = (source: Env, name: string): boolean => (source[name]?.trim() ?? '') !== ''
  const names = [...Object.keys(DESCRIBE), ...settingNames().filter((name) => !(name in DESCRIBE))]
  return names.map((name) => {
    const describe = DESCRIBE[name]
    // A variable added without a description still shows what was set, never a secret's value.
    const value = describe !== undefined ? describe(config) : SECRETS.has(name) ? masked(values[name]) : values[name]?.trim()
    let source = 'default'
    if (SECRETS.has(name) && isSet(values, `${name}_FILE`)) source = `${name}_FILE=${values[`${name}_FILE`]!.trim()}`
    else if (isSet(env, name)) source = 'environment'
    else if (isSet(values, name)) source = '.env'
    else if (config.generatedSecrets.includes(name)) source = `generated at the first start, stored in ${config.dataDir}`
    else if (config.loadedSecrets.includes(name)) source = `generated earlier, stored in ${config.dataDir}`
    return { name, value, source }
  })
}
