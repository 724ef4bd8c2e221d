// The effective configuration, one line per variable, for `authgate config check`: what the server
// would use (defaults included) and where each value came from. Secrets never appear, not even in
// part: only whether they are set, their length and their source.
import type { Config } from './index.js'
import type { Env } from './environment.js'
import { maskDatabaseUrl } from './database.js'
import { KNOWN_VARIABLES, SECRET_VARIABLES } from './variables.js'
import { OWN_SETTINGS, PROVIDER_SETTINGS, providerPrefix, unprefixed, type OidcConfig, type ProviderSetting } from './oidc.js'

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
/** The single provider's setting; with OIDC_PROVIDERS the unprefixed variables are defaults (describeConfig). */
const oidc = (f: (o: OidcConfig) => string | undefined): Describe => (c) => c.oidc === undefined || c.multipleProviders ? undefined : f(c.oidc) ?? ''
const pg = (f: (p: NonNullable<Config['postgres']>) => string | undefined): Describe => (c) => c.postgres === undefined ? undefined : f(c.postgres) ?? ''
const jwt = (f: (j: NonNullable<Config['identityJwt']>) => string | undefined): Describe => (c) => c.identityJwt === undefined ? undefined : f(c.identityJwt) ?? ''

/** How each setting of one SSO provider shows: the single provider's OIDC_*, or one of OIDC_PROVIDERS' OIDC_<ID>_*. */
const PROVIDER: Record<ProviderSetting, (o: OidcConfig) => string | undefined> = {
  ISSUER: (o) => o.issuer.href,
  CLIENT_ID: (o) => o.clientId,
  CLIENT_SECRET: (o) => masked(o.clientSecret),
  CLIENT_AUTH_METHOD: (o) => o.clientAuthMethod,
  REDIRECT_URI: (o) => o.redirectUri.href,
  SCOPES: (o) => o.scopes,
  USERNAME_CLAIM: (o) => o.usernameClaim,
  FULL_NAME_CLAIM: (o) => o.fullNameClaim,
  EMAIL_CLAIM: (o) => o.emailClaim,
  GROUPS_CLAIM: (o) => o.groupsClaim,
  ADMIN_GROUP: (o) => o.adminGroup,
  ADMIN_EMAILS: (o) => o.adminEmails.join(','),
  POST_LOGOUT_REDIRECT_URI: (o) => o.postLogoutRedirectUri?.href,
  BUTTON_TEXT: (o) => o.buttonText,
  REFRESH_INTERVAL: (o) => String(o.refreshInterval),
  TIMEOUT: (o) => String(o.timeout),
  ALLOWED_EMAIL_DOMAINS: (o) => o.signInAllowList.emailDomains.join(','),
  ALLOWED_EMAILS: (o) => o.signInAllowList.emails.join(','),
  ALLOWED_GROUPS: (o) => o.signInAllowList.groups.join(','),
  ALLOW_SELF_REGISTER: (o) => String(o.allowSelfRegister)
}

/** Settings whose shared variable counts even when set to empty (the empty list, docs/PROTOCOL.md#list-variables). */
const LIST_SETTINGS: ReadonlySet<ProviderSetting> = new Set(['SCOPES', 'ADMIN_EMAILS', 'ALLOWED_EMAIL_DOMAINS', 'ALLOWED_EMAILS', 'ALLOWED_GROUPS'])

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
  LOCAL_MFA: (c) => c.authMethod === 'oidc' ? undefined : c.localMfa,
  ALLOW_SELF_REGISTER: (c) => String(c.allowSelfRegister),
  ADMIN_USERNAMES: (c) => c.adminUsernames.join(','),
  OIDC_PROVIDERS: (c) => c.multipleProviders ? c.oidcProviders.map((p) => p.id).join(',') : undefined,
  OIDC_ISSUER: oidc(PROVIDER.ISSUER),
  OIDC_CLIENT_ID: oidc(PROVIDER.CLIENT_ID),
  OIDC_CLIENT_SECRET: oidc(PROVIDER.CLIENT_SECRET),
  OIDC_CLIENT_AUTH_METHOD: oidc(PROVIDER.CLIENT_AUTH_METHOD),
  OIDC_REDIRECT_URI: oidc(PROVIDER.REDIRECT_URI),
  OIDC_SCOPES: oidc(PROVIDER.SCOPES),
  OIDC_USERNAME_CLAIM: oidc(PROVIDER.USERNAME_CLAIM),
  OIDC_FULL_NAME_CLAIM: oidc(PROVIDER.FULL_NAME_CLAIM),
  OIDC_EMAIL_CLAIM: oidc(PROVIDER.EMAIL_CLAIM),
  OIDC_GROUPS_CLAIM: oidc(PROVIDER.GROUPS_CLAIM),
  OIDC_ADMIN_GROUP: oidc(PROVIDER.ADMIN_GROUP),
  OIDC_ADMIN_EMAILS: oidc(PROVIDER.ADMIN_EMAILS),
  OIDC_POST_LOGOUT_REDIRECT_URI: oidc(PROVIDER.POST_LOGOUT_REDIRECT_URI),
  OIDC_BUTTON_TEXT: oidc(PROVIDER.BUTTON_TEXT),
  OIDC_REFRESH_INTERVAL: oidc(PROVIDER.REFRESH_INTERVAL),
  OIDC_TIMEOUT: oidc(PROVIDER.TIMEOUT),
  OIDC_RATE_LIMIT: (c) => c.oidc === undefined ? undefined : String(c.oidcRateLimit),
  ALLOWED_EMAIL_DOMAINS: (c) => c.signInAllowList.emailDomains.join(','),
  ALLOWED_EMAILS: (c) => c.signInAllowList.emails.join(','),
  ALLOWED_GROUPS: (c) => c.signInAllowList.groups.join(','),
  ACCESS_RULES: (c) => c.accessRules.map((rule) => `${rule.path}=${rule.requirements.map(describeRequirement).join(',')}`).join(';'),
  SESSION_COOKIE_SECURE: (c) => String(c.sessionCookieSecure),
  SESSION_MAX_AGE: (c) => String(c.sessionMaxAge),
  REVOCATION_MAX_STALENESS: (c) => String(c.revocationMaxStaleness),
  TRUST_PROXY: (c) => Array.isArray(c.trustProxy) ? c.trustProxy.join(',') : String(c.trustProxy),
  SKIP_AUTH_PATHS: (c) => c.skipAuthPaths.join(','),
  UPSTREAM_POOL_SIZE: (c) => String(c.upstreamPoolSize),
  UPSTREAM_HEADER_TIMEOUT: (c) => seconds(c.upstreamHeaderTimeoutMs),
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
  WORKERS: (c) => String(c.workers),
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
  /** Present at all, even empty (a list set to empty is the empty list). */
  const given = (source: Env, name: string): boolean => source[name] !== undefined
  const sourceOf = (name: string, secret: boolean, set: (source: Env, name: string) => boolean): string => {
    if (secret && isSet(values, `${name}_FILE`)) return `${name}_FILE=${values[`${name}_FILE`]!.trim()}`
    if (set(env, name)) return 'environment'
    if (set(values, name)) return '.env'
    if (config.generatedSecrets.includes(name)) return `generated at the first start, stored in ${config.dataDir}`
    if (config.loadedSecrets.includes(name)) return `generated earlier, stored in ${config.dataDir}`
    return 'default'
  }
  // With OIDC_PROVIDERS the unprefixed OIDC_* are what every provider inherits: shown as set (a list
  // set to empty included); the issuer and client are each provider's own, so unused.
  const sharedDefaults = new Set(config.multipleProviders
    ? PROVIDER_SETTINGS.filter((s) => !OWN_SETTINGS.includes(s)).map(unprefixed).filter((name) => name.startsWith('OIDC_'))
    : [])
  const names = [...Object.keys(DESCRIBE), ...settingNames().filter((name) => !(name in DESCRIBE))]
  const settings = names.map((name): Setting => {
    if (sharedDefaults.has(name)) return { name, value: values[name]?.trim(), source: sourceOf(name, false, given) }
    const describe = DESCRIBE[name]
    // A variable added without a description still shows what was set, never a secret's value.
    const value = describe !== undefined ? describe(config) : SECRETS.has(name) ? masked(values[name]) : values[name]?.trim()
    return { name, value, source: sourceOf(name, SECRETS.has(name), isSet) }
  })
  if (!config.multipleProviders) return settings
  // Each provider's effective settings under its own names, after the shared ones they default to.
  const providers = config.oidcProviders.flatMap((o) => PROVIDER_SETTINGS.map((setting): Setting => {
    const from = providerVariable(o.id, setting, values)
    const own = providerPrefix(o.id) + setting
    const source = from === undefined
      ? 'default'
      : from === own ? sourceOf(own, setting === 'CLIENT_SECRET', given) : `from ${from} (${sourceOf(from, false, given)})`
    return { name: own, value: PROVIDER[setting](o) ?? '', source }
  }))
  // After the last of the shared OIDC_* lines (OIDC_TIMEOUT and OIDC_RATE_LIMIT included).
  const after = settings.findLastIndex((s) => s.name.startsWith('OIDC_')) + 1
  return [...settings.slice(0, after), ...providers, ...settings.slice(after)]
}

/**
 * The variable one provider's setting was read from (as src/config/oidc.ts reads it): its own when
 * set, even to empty; else the shared one when set (a list even to empty); undefined: the built-in default.
 */
function providerVariable (id: string, setting: ProviderSetting, values: Env): string | undefined {
  const own = providerPrefix(id) + setting
  if (values[own] !== undefined || OWN_SETTINGS.includes(setting)) return own
  const shared = unprefixed(setting)
  const value = values[shared]
  if (value === undefined || (value.trim() === '' && !LIST_SETTINGS.has(setting))) return undefined
  return shared
}
