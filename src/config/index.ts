// Configuration: read once at startup from the environment (and ./.env), validated into one typed
// object. Every problem is collected so the operator sees them all in one message, not one per restart.
import { readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { extname, resolve } from 'node:path'
import { parse as parseDotenv } from 'dotenv'
import { isLoopbackHost } from './net.js'
import { loadOrCreateDevSecrets } from './dev-secrets.js'
import type { KeyObject } from 'node:crypto'
import type { ClientLimits } from '../proxy/client-limits.js'
import { KEY_HELP, loadOrCreateDevSigningKey, parseSigningKey, parseVerificationKeys } from '../identity/jwt-keys.js'

export type AuthMethod = 'local' | 'oidc' | 'both'
export type LocalAuth = 'username' | 'password'
/** Which client-supplied X-Forwarded-* we believe: none, all, the last N hops, or peers in these CIDRs. */
export type TrustProxy = boolean | number | string[]

export interface OidcConfig {
  issuer: URL
  clientId: string
  clientSecret: string
  /** How the gateway authenticates at the token endpoint (OIDC_CLIENT_AUTH_METHOD). */
  clientAuthMethod: 'client_secret_post' | 'client_secret_basic'
  redirectUri: URL
  scopes: string
  usernameClaim: string
  fullNameClaim: string
  emailClaim: string
  groupsClaim: string
  adminGroup: string | undefined
  adminEmails: string[]
  postLogoutRedirectUri: URL | undefined
  buttonText: string
}

/** The logo on the gateway's pages: `src` is what the page's <img> loads. */
export interface LogoConfig {
  src: string
  /** LOGO_FILE: served by the gateway at `src` (under /_authgate/static/). */
  file?: { path: string, contentType: string }
  /** LOGO_URL on another origin: allowed by the pages' Content-Security-Policy (img-src). */
  origin?: string
}

/** IDENTITY_JWT=true: the signed assertion sent as X-Identity-Assertion and published keys. */
export interface IdentityJwtConfig {
  signingKey: KeyObject
  /** Public keys still published in the JWKS during a rotation (IDENTITY_JWT_KEY_PREVIOUS). */
  previousKeys: KeyObject[]
  /** `iss`: PUBLIC_URL's origin. */
  issuer: string
  /** `aud`: IDENTITY_JWT_AUDIENCE; undefined means the upstream's origin (known once it runs). */
  audience: string | undefined
}

export interface Config {
  production: boolean
  host: string
  port: number
  publicUrl: URL | undefined
  /** undefined: serve the embedded demo upstream (development only). */
  upstreamUrl: URL | undefined
  /** Current key first, then the previous ones still accepted for decryption. */
  secretKeys: string[]
  headerSigningSecret: string
  databaseUrl: string
  authMethod: AuthMethod
  localAuth: LocalAuth
  allowSelfRegister: boolean
  adminUsernames: string[]
  oidc: OidcConfig | undefined
  sessionCookieSecure: boolean
  sessionMaxAge: number
  trustProxy: TrustProxy
  skipAuthPaths: string[]
  /** UPSTREAM_POOL_SIZE: connections to the upstream, shared by every client. */
  upstreamPoolSize: number
  /** How slow and how greedy one client may be toward the shared upstream pool. */
  clientLimits: ClientLimits
  identityJwt: IdentityJwtConfig | undefined
  logLevel: string
  appName: string
  logo: LogoConfig | undefined
  dataDir: string
  /** Names of secrets generated for development, to be logged as a warning. */
  generatedSecrets: string[]
}

export interface ConfigProblem { name: string, message: string }

export class ConfigError extends Error {
  constructor (readonly problems: ConfigProblem[]) {
    super('Invalid configuration:\n' + problems.map((p) => `  - ${p.name}: ${p.message}`).join('\n'))
    this.name = 'ConfigError'
  }
}

export type Env = Record<string, string | undefined>

export interface LoadOptions {
  /** Directory holding .env and the default ./data (the working directory). */
  cwd?: string
  /** Read ./.env (default true); tests turn it off to stay hermetic. */
  dotenv?: boolean
}

const SECRET_NAMES = ['SECRET_KEY', 'SECRET_KEY_PREVIOUS', 'HEADER_SIGNING_SECRET', 'OIDC_CLIENT_SECRET',
  'IDENTITY_JWT_KEY', 'IDENTITY_JWT_KEY_PREVIOUS', 'DATABASE_URL']
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const MIN_SECRET_LENGTH = 32

/** Merge process env over .env, then resolve every `<NAME>_FILE` (an explicit value wins a conflict check). */
export function readEnvironment (env: Env, options: LoadOptions = {}): { values: Env, problems: ConfigProblem[] } {
  const cwd = options.cwd ?? process.cwd()
  const problems: ConfigProblem[] = []
  let fromFile: Env = {}
  if (options.dotenv !== false) {
    try {
      fromFile = parseDotenv(readFileSync(resolve(cwd, '.env')))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        problems.push({ name: '.env', message: `cannot be read (${(err as Error).message})` })
      }
    }
  }
  const values: Env = { ...fromFile, ...env }
  for (const name of SECRET_NAMES) {
    const filePath = values[`${name}_FILE`]
    if (filePath === undefined || filePath === '') continue
    if (values[name] !== undefined && values[name] !== '') {
      problems.push({ name: `${name}_FILE`, message: `set together with ${name}; set only one of them` })
      continue
    }
    try {
      values[name] = readFileSync(resolve(cwd, filePath), 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      problems.push({ name: `${name}_FILE`, message: `cannot read ${filePath} (${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a readable file holding the secret` })
    }
  }
  return { values, problems }
}

export function loadConfig (env: Env = process.env, options: LoadOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd()
  const { values, problems } = readEnvironment(env, options)
  const get = (name: string): string | undefined => {
    const v = values[name]?.trim()
    return v === undefined || v === '' ? undefined : v
  }
  const fail = (name: string, message: string): undefined => { problems.push({ name, message }); return undefined }

  const production = get('NODE_ENV') === 'production'

  const port = parseIntIn(get('PORT') ?? '8080', 0, 65535) ?? fail('PORT', 'must be an integer from 0 to 65535')
  const host = get('HOST') ?? '0.0.0.0'

  const publicUrl = optionalUrl('PUBLIC_URL', get('PUBLIC_URL'), ['http:', 'https:'], fail)
  if (publicUrl !== undefined && (publicUrl.pathname !== '/' || publicUrl.search !== '' || publicUrl.hash !== '')) {
    fail('PUBLIC_URL', 'must be an origin only, e.g. https://tt.example.com (authgate serves the whole host)')
  }
  const upstreamUrl = optionalUrl('UPSTREAM_URL', get('UPSTREAM_URL'), ['http:', 'https:'], fail)
  if (production && upstreamUrl === undefined) {
    fail('UPSTREAM_URL', 'is required when NODE_ENV=production (the demo upstream is for development only); e.g. http://timetracker:8080')
  }

  const authMethod = oneOf('AUTH_METHOD', get('AUTH_METHOD') ?? 'local', ['local', 'oidc', 'both'] as const, fail)
  const localAuth = oneOf('LOCAL_AUTH', get('LOCAL_AUTH') ?? 'username', ['username', 'password'] as const, fail)
  const allowSelfRegister = parseBool('ALLOW_SELF_REGISTER', get('ALLOW_SELF_REGISTER') ?? 'true', fail)
  const adminUsernames = list(get('ADMIN_USERNAMES') ?? 'admin').map((u) => u.toLowerCase())

  const sessionMaxAge = parseIntIn(get('SESSION_MAX_AGE') ?? '86400', 60, 400 * 86400) ??
    fail('SESSION_MAX_AGE', 'must be a whole number of seconds from 60 to 34560000 (400 days)')
  const secureDefault = production || publicUrl?.protocol === 'https:'
  const sessionCookieSecure = parseBool('SESSION_COOKIE_SECURE', get('SESSION_COOKIE_SECURE') ?? String(secureDefault), fail)

  const trustProxy = parseTrustProxy(get('TRUST_PROXY') ?? 'false', fail)
  const skipAuthPaths = parseSkipAuthPaths(get('SKIP_AUTH_PATHS'), fail)
  const { upstreamPoolSize, clientLimits } = parseClientLimits(get, fail)

  const logLevel = get('LOG_LEVEL') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) fail('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`)

  const databaseUrl = get('DATABASE_URL') ?? 'sqlite:./data/authgate.db'
  if (!/^sqlite:.+/.test(databaseUrl) && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    fail('DATABASE_URL', 'must be sqlite:<path> (e.g. sqlite:./data/authgate.db) or postgres://user:password@host:5432/db')
  }

  const dataDir = resolve(cwd, 'data')
  const generatedSecrets: string[] = []
  let secretKey = get('SECRET_KEY')
  let headerSigningSecret = get('HEADER_SIGNING_SECRET')
  if (!production && (secretKey === undefined || headerSigningSecret === undefined) && problems.length === 0) {
    // Development only: a stable generated secret, so restarts keep sessions and the demo verifies.
    const dev = loadOrCreateDevSecrets(dataDir)
    if (secretKey === undefined) { secretKey = dev.SECRET_KEY; generatedSecrets.push('SECRET_KEY') }
    if (headerSigningSecret === undefined) { headerSigningSecret = dev.HEADER_SIGNING_SECRET; generatedSecrets.push('HEADER_SIGNING_SECRET') }
  }
  // A secret whose _FILE failed is already reported; in development a missing one is generated once
  // the other problems are fixed, so only production reports it as missing.
  const unreadable = new Set(problems.map((p) => p.name.replace(/_FILE$/, '')))
  if (!unreadable.has('SECRET_KEY') && (production || secretKey !== undefined)) checkSecret('SECRET_KEY', secretKey, fail)
  if (!unreadable.has('HEADER_SIGNING_SECRET') && (production || headerSigningSecret !== undefined)) checkSecret('HEADER_SIGNING_SECRET', headerSigningSecret, fail)
  const previousKeys = list(get('SECRET_KEY_PREVIOUS') ?? '')
  for (const key of previousKeys) checkSecret('SECRET_KEY_PREVIOUS', key, fail)
  // The upstream holds HEADER_SIGNING_SECRET; if it could also derive the session keys, it (or anyone
  // who reads its configuration) could mint a session for any user, administrators included.
  if (headerSigningSecret !== undefined && (headerSigningSecret === secretKey || previousKeys.includes(headerSigningSecret))) {
    fail('HEADER_SIGNING_SECRET', 'must differ from SECRET_KEY and SECRET_KEY_PREVIOUS (the upstream holds it; it must not be able to forge sessions); generate one with: openssl rand -base64 48')
  }

  const oidc = authMethod === 'oidc' || authMethod === 'both' ? parseOidc(get, fail) : undefined
  const logo = parseLogo(get('LOGO_URL'), get('LOGO_FILE'), cwd, fail)
  const identityJwt = parseIdentityJwt(get, { production, publicUrl, dataDir, generatedSecrets, canGenerate: problems.length === 0 }, fail)

  if (problems.length > 0) throw new ConfigError(problems)

  return {
    production,
    host,
    port: port!,
    publicUrl,
    upstreamUrl,
    secretKeys: [secretKey!, ...previousKeys],
    headerSigningSecret: headerSigningSecret!,
    databaseUrl,
    authMethod: authMethod!,
    localAuth: localAuth!,
    allowSelfRegister: allowSelfRegister!,
    adminUsernames,
    oidc,
    sessionCookieSecure: sessionCookieSecure!,
    sessionMaxAge: sessionMaxAge!,
    trustProxy: trustProxy!,
    skipAuthPaths: skipAuthPaths ?? [],
    upstreamPoolSize: upstreamPoolSize!,
    clientLimits: clientLimits!,
    identityJwt,
    logLevel,
    appName: get('APP_NAME') ?? 'authgate',
    logo,
    dataDir,
    generatedSecrets
  }
}

type Fail = (name: string, message: string) => undefined

function parseOidc (get: (name: string) => string | undefined, fail: Fail): OidcConfig | undefined {
  const required = ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URI']
  let missing = false
  for (const name of required) {
    if (get(name) === undefined) { fail(name, 'is required when AUTH_METHOD is oidc or both'); missing = true }
  }
  const issuer = optionalUrl('OIDC_ISSUER', get('OIDC_ISSUER'), ['http:', 'https:'], fail)
  if (issuer !== undefined && issuer.protocol === 'http:' && !isLoopbackHost(issuer.hostname)) {
    fail('OIDC_ISSUER', 'must use https:// (http:// is accepted only for localhost, 127.0.0.0/8 and ::1)')
  }
  const redirectUri = optionalUrl('OIDC_REDIRECT_URI', get('OIDC_REDIRECT_URI'), ['http:', 'https:'], fail)
  if (redirectUri !== undefined && redirectUri.pathname !== '/auth/oidc/callback') {
    fail('OIDC_REDIRECT_URI', 'must end in /auth/oidc/callback, e.g. https://tt.example.com/auth/oidc/callback')
  }
  const postLogoutRedirectUri = optionalUrl('OIDC_POST_LOGOUT_REDIRECT_URI', get('OIDC_POST_LOGOUT_REDIRECT_URI'), ['http:', 'https:'], fail)
  const scopes = get('OIDC_SCOPES') ?? 'openid profile email'
  if (!scopes.split(/\s+/).includes('openid')) fail('OIDC_SCOPES', 'must include openid')
  const clientAuthMethod = oneOf('OIDC_CLIENT_AUTH_METHOD', get('OIDC_CLIENT_AUTH_METHOD') ?? 'client_secret_post', ['client_secret_post', 'client_secret_basic'] as const, fail)
  if (missing || issuer === undefined || redirectUri === undefined || clientAuthMethod === undefined) return undefined
  return {
    issuer,
    clientId: get('OIDC_CLIENT_ID')!,
    clientSecret: get('OIDC_CLIENT_SECRET')!,
    clientAuthMethod,
    redirectUri,
    scopes,
    usernameClaim: get('OIDC_USERNAME_CLAIM') ?? 'preferred_username',
    fullNameClaim: get('OIDC_FULL_NAME_CLAIM') ?? 'name',
    emailClaim: get('OIDC_EMAIL_CLAIM') ?? 'email',
    groupsClaim: get('OIDC_GROUPS_CLAIM') ?? 'groups',
    adminGroup: get('OIDC_ADMIN_GROUP'),
    adminEmails: list(get('OIDC_ADMIN_EMAILS') ?? '').map((e) => e.toLowerCase()),
    postLogoutRedirectUri,
    buttonText: get('OIDC_BUTTON_TEXT') ?? 'Sign in with SSO'
  }
}

/** Image types a logo may have, by file extension (what the browser is told it is). */
export const LOGO_TYPES: Record<string, string> = {
  '.png': 'image/png', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif'
}
const MAX_LOGO_BYTES = 512 * 1024

function parseLogo (url: string | undefined, file: string | undefined, cwd: string, fail: Fail): LogoConfig | undefined {
  if (url !== undefined && file !== undefined) return fail('LOGO_URL', 'set together with LOGO_FILE; set only one of them')
  if (file !== undefined) {
    const path = resolve(cwd, file)
    const ext = extname(path).toLowerCase()
    const contentType = LOGO_TYPES[ext]
    if (contentType === undefined) return fail('LOGO_FILE', `must be an image file ending in ${Object.keys(LOGO_TYPES).join(', ')}`)
    let size: number
    try {
      const stat = statSync(path)
      if (!stat.isFile()) return fail('LOGO_FILE', `${file} is not a file`)
      size = stat.size
    } catch (err) {
      return fail('LOGO_FILE', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a readable image file`)
    }
    if (size > MAX_LOGO_BYTES) return fail('LOGO_FILE', `${file} is larger than ${MAX_LOGO_BYTES / 1024} KiB; use a smaller image`)
    return { src: `/_authgate/static/logo${ext === '.jpeg' ? '.jpg' : ext}`, file: { path, contentType } }
  }
  if (url === undefined) return undefined
  // A same-origin path (e.g. the application's own static logo, listed in SKIP_AUTH_PATHS) ...
  if (url.startsWith('/') && !url.startsWith('//') && !/[\\\s"'<>]/.test(url)) return { src: url }
  // ... or an https URL, whose origin the pages' Content-Security-Policy then allows for images.
  const parsed = optionalUrl('LOGO_URL', url, ['https:', 'http:'], fail)
  if (parsed === undefined) return undefined
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
    return fail('LOGO_URL', 'must be a path such as /static/logo.png or an https:// URL (http:// only on loopback hosts)')
  }
  return { src: parsed.href, origin: parsed.origin }
}

function parseIdentityJwt (
  get: (name: string) => string | undefined,
  ctx: { production: boolean, publicUrl: URL | undefined, dataDir: string, generatedSecrets: string[], canGenerate: boolean },
  fail: Fail
): IdentityJwtConfig | undefined {
  const enabled = parseBool('IDENTITY_JWT', get('IDENTITY_JWT') ?? 'false', fail)
  if (enabled !== true) return undefined
  if (ctx.publicUrl === undefined) fail('PUBLIC_URL', 'is required when IDENTITY_JWT=true (it is the assertion\'s issuer, iss); e.g. https://tt.example.com')
  let signingKey: KeyObject | undefined
  const pem = get('IDENTITY_JWT_KEY')
  if (pem !== undefined) {
    const parsed = parseSigningKey(pem)
    if (typeof parsed === 'string') fail('IDENTITY_JWT_KEY', parsed)
    else signingKey = parsed
  } else if (ctx.production) {
    fail('IDENTITY_JWT_KEY', `is required when IDENTITY_JWT=true and NODE_ENV=production (or set IDENTITY_JWT_KEY_FILE); ${KEY_HELP}`)
  } else if (ctx.canGenerate && ctx.publicUrl !== undefined) {
    // Development only, like the other generated secrets: stable across restarts, logged as a warning.
    signingKey = loadOrCreateDevSigningKey(ctx.dataDir)
    ctx.generatedSecrets.push('IDENTITY_JWT_KEY')
  }
  let previousKeys: KeyObject[] = []
  const previous = get('IDENTITY_JWT_KEY_PREVIOUS')
  if (previous !== undefined) {
    const parsed = parseVerificationKeys(previous)
    if (typeof parsed === 'string') fail('IDENTITY_JWT_KEY_PREVIOUS', parsed)
    else previousKeys = parsed
  }
  const audience = get('IDENTITY_JWT_AUDIENCE')
  if (signingKey === undefined || ctx.publicUrl === undefined) return undefined
  return { signingKey, previousKeys, issuer: ctx.publicUrl.origin, audience }
}

function list (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function parseIntIn (value: string, min: number, max: number): number | undefined {
  if (!/^\d+$/.test(value)) return undefined
  const n = Number(value)
  return n >= min && n <= max ? n : undefined
}

function parseBool (name: string, value: string, fail: Fail): boolean | undefined {
  const v = value.toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(v)) return true
  if (['false', '0', 'no', 'off'].includes(v)) return false
  return fail(name, 'must be true or false')
}

function oneOf<T extends string> (name: string, value: string, allowed: readonly T[], fail: Fail): T | undefined {
  const v = value.toLowerCase()
  return (allowed as readonly string[]).includes(v) ? v as T : fail(name, `must be one of ${allowed.join(', ')}`)
}

function optionalUrl (name: string, value: string | undefined, protocols: string[], fail: Fail): URL | undefined {
  if (value === undefined) return undefined
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return fail(name, `is not a valid URL; use the form ${protocols[protocols.length - 1]}//host[:port]`)
  }
  if (!protocols.includes(url.protocol)) return fail(name, `must start with ${protocols.map((p) => p + '//').join(' or ')}`)
  if (url.username !== '' || url.password !== '') return fail(name, 'must not contain credentials')
  return url
}

function checkSecret (name: string, value: string | undefined, fail: Fail): void {
  if (value === undefined) {
    fail(name, `is required when NODE_ENV=production; generate one with: openssl rand -base64 48 (or set ${name}_FILE)`)
  } else if (value.length < MIN_SECRET_LENGTH) {
    fail(name, `must be at least ${MIN_SECRET_LENGTH} characters; generate one with: openssl rand -base64 48`)
  }
}

function parseTrustProxy (value: string, fail: Fail): TrustProxy | undefined {
  const v = value.toLowerCase()
  if (v === 'true' || v === 'false') return v === 'true'
  if (/^\d+$/.test(v)) return Number(v)
  const cidrs = list(value)
  if (cidrs.length > 0 && cidrs.every(isAddressOrCidr)) return cidrs
  return fail('TRUST_PROXY', 'must be true, false, a hop count, or comma-separated addresses/CIDRs such as 10.0.0.0/8,127.0.0.1')
}

/** What proxy-addr accepts (anything else would stop startup later with a bare TypeError). */
function isAddressOrCidr (value: string): boolean {
  const [address = '', prefix, ...rest] = value.split('/')
  const version = isIP(address)
  if (version === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  if (!/^\d{1,3}$/.test(prefix)) return false
  return Number(prefix) <= (version === 4 ? 32 : 128)
}

/** Defaults a slow mobile upload passes with room to spare (20 KB/s is twenty times the minimum rate). */
export const CLIENT_LIMIT_DEFAULTS = { headerTimeout: 30, bodyIdleTimeout: 30, bodyMinRate: 1024, upstreamPoolSize: 128 }

function parseClientLimits (get: (name: string) => string | undefined, fail: Fail): { upstreamPoolSize: number | undefined, clientLimits: ClientLimits | undefined } {
  const seconds = (name: string, fallback: number): number | undefined =>
    parseIntIn(get(name) ?? String(fallback), 1, 3600) ?? fail(name, 'must be a whole number of seconds from 1 to 3600')
  const headerTimeout = seconds('CLIENT_HEADER_TIMEOUT', CLIENT_LIMIT_DEFAULTS.headerTimeout)
  const bodyIdleTimeout = seconds('CLIENT_BODY_IDLE_TIMEOUT', CLIENT_LIMIT_DEFAULTS.bodyIdleTimeout)
  const bodyMinRate = parseIntIn(get('CLIENT_BODY_MIN_RATE') ?? String(CLIENT_LIMIT_DEFAULTS.bodyMinRate), 0, 1_000_000_000) ??
    fail('CLIENT_BODY_MIN_RATE', 'must be a whole number of bytes per second (0 turns the rate check off; the idle limit still applies)')
  const upstreamPoolSize = parseIntIn(get('UPSTREAM_POOL_SIZE') ?? String(CLIENT_LIMIT_DEFAULTS.upstreamPoolSize), 2, 65535) ??
    fail('UPSTREAM_POOL_SIZE', 'must be a whole number of connections from 2 to 65535')
  // By default one address may hold a quarter of the pool: never all of it, enough for a busy browser.
  const fallbackMax = upstreamPoolSize !== undefined ? Math.max(1, Math.floor(upstreamPoolSize / 4)) : 1
  const maxRaw = get('CLIENT_MAX_CONCURRENT_REQUESTS')
  let maxConcurrentRequests = parseIntIn(maxRaw ?? String(fallbackMax), 1, 65534) ??
    fail('CLIENT_MAX_CONCURRENT_REQUESTS', 'must be a whole number of requests, at least 1')
  if (maxConcurrentRequests !== undefined && upstreamPoolSize !== undefined && maxConcurrentRequests >= upstreamPoolSize) {
    maxConcurrentRequests = fail('CLIENT_MAX_CONCURRENT_REQUESTS', `must be less than UPSTREAM_POOL_SIZE (${upstreamPoolSize}), or one client address could hold every upstream connection; raise UPSTREAM_POOL_SIZE too if you need more`)
  }
  if (headerTimeout === undefined || bodyIdleTimeout === undefined || bodyMinRate === undefined || maxConcurrentRequests === undefined) return { upstreamPoolSize, clientLimits: undefined }
  return {
    upstreamPoolSize,
    clientLimits: { headerTimeoutMs: headerTimeout * 1000, bodyIdleTimeoutMs: bodyIdleTimeout * 1000, bodyMinBytesPerSecond: bodyMinRate, maxConcurrentRequests }
  }
}

function parseSkipAuthPaths (value: string | undefined, fail: Fail): string[] | undefined {
  const paths = list(value ?? '')
  for (const p of paths) {
    // Prefixes are compared with the normalised request path, so they must be normalised themselves.
    if (!p.startsWith('/') || p.includes('//') || /(^|\/)\.\.?(\/|$)/.test(p) || /[%\\?#]/.test(p)) {
      return fail('SKIP_AUTH_PATHS', `"${p}" must be a plain path prefix starting with /, without . or .. segments, %, \\, ? or #`)
    }
    if (p === '/') return fail('SKIP_AUTH_PATHS', '"/" would disable authentication for everything; list narrower prefixes')
  }
  return paths
}
