import t from 'tap'
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/index.js'
import { isLoopbackHost } from '../../src/config/net.js'
import { configProblems } from '../support/config.js'

const dir = (): string => mkdtempSync(join(tmpdir(), 'authgate-config-'))
const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }

const problems = (env: Record<string, string>, cwd = dir()): string[] => configProblems(env, cwd)

t.test('defaults are the documented ones (README, Configuration)', async (t) => {
  const c = loadConfig({ ...secrets }, { cwd: dir(), dotenv: false })
  t.equal(c.port, 8080)
  t.equal(c.host, '127.0.0.1', 'development listens on loopback only')
  t.equal(c.databaseUrl, 'sqlite:./data/authgate.db')
  t.equal(c.authMethod, 'local')
  t.equal(c.localAuth, 'username')
  t.equal(c.localMfa, 'off')
  t.equal(c.allowSelfRegister, true)
  t.same(c.adminUsernames, ['admin'])
  t.equal(c.sessionMaxAge, 86400)
  t.equal(c.sessionCookieSecure, false)
  t.equal(c.trustProxy, false)
  t.same(c.skipAuthPaths, [])
  t.equal(c.upstreamUrl, undefined)
  t.same(c.generatedSecrets, [])
  t.same(c.loadedSecrets, [])
})

t.test('every bad variable is reported at once, with a fix', async (t) => {
  const names = problems({ NODE_ENV: 'production', PORT: 'eighty', AUTH_METHOD: 'saml', SECRET_KEY: 'short', SESSION_MAX_AGE: '-1', TRUST_PROXY: 'maybe', SKIP_AUTH_PATHS: '/static/,../x', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x' })
  t.same(names.sort(), ['AUTH_METHOD', 'DATABASE_URL', 'HEADER_SIGNING_SECRET', 'LOG_LEVEL', 'PORT', 'SECRET_KEY', 'SESSION_MAX_AGE', 'SKIP_AUTH_PATHS', 'TRUST_PROXY', 'UPSTREAM_URL'].sort())
  try {
    loadConfig({ NODE_ENV: 'production' }, { cwd: dir(), dotenv: false })
    t.fail('should throw')
  } catch (err) {
    t.match((err as Error).message, /SECRET_KEY: is required when NODE_ENV=production; generate one with: openssl rand/)
    t.notMatch((err as Error).message, /\n\s+at /, 'no stack trace in the message')
  }
})

t.test('production generates nothing', async (t) => {
  const cwd = dir()
  t.same(problems({ NODE_ENV: 'production', UPSTREAM_URL: 'http://app:5000' }, cwd).sort(), ['HEADER_SIGNING_SECRET', 'LOCAL_AUTH', 'SECRET_KEY'])
  t.notOk(existsSync(join(cwd, 'data')), 'no ./data created')
})

t.test('development generates secrets once and keeps them', async (t) => {
  const cwd = dir()
  const first = loadConfig({}, { cwd, dotenv: false })
  t.same(first.generatedSecrets, ['SECRET_KEY', 'HEADER_SIGNING_SECRET'])
  t.same(first.loadedSecrets, [])
  const second = loadConfig({}, { cwd, dotenv: false })
  t.same(second.generatedSecrets, [], 'the second start generates nothing ...')
  t.same(second.loadedSecrets, ['SECRET_KEY', 'HEADER_SIGNING_SECRET'], '... it loads what the first stored')
  t.equal(second.secretKeys[0], first.secretKeys[0])
  t.equal(second.headerSigningSecret, first.headerSigningSecret)
  t.ok(first.secretKeys[0]!.length >= 32)
})

t.test('<NAME>_FILE and .env', async (t) => {
  const cwd = dir()
  writeFileSync(join(cwd, 'key'), 'k'.repeat(40) + '\n')
  writeFileSync(join(cwd, '.env'), `HEADER_SIGNING_SECRET=${'e'.repeat(32)}\nPORT=9999\n`)
  const c = loadConfig({ SECRET_KEY_FILE: 'key', PORT: '7000' }, { cwd })
  t.equal(c.secretKeys[0], 'k'.repeat(40), 'trailing newline dropped')
  t.equal(c.headerSigningSecret, 'e'.repeat(32), '.env read')
  t.equal(c.port, 7000, 'the environment wins over .env')
  t.same(problems({ ...secrets, SECRET_KEY_FILE: 'key' }, cwd), ['SECRET_KEY_FILE'], 'both set: refused')
  t.same(problems({ HEADER_SIGNING_SECRET: 'h'.repeat(32), SECRET_KEY_FILE: 'missing' }, cwd), ['SECRET_KEY_FILE'])
  t.equal(readFileSync(join(cwd, 'key'), 'utf8').length, 41)
})

t.test('OIDC settings', async (t) => {
  t.same(problems({ ...secrets, AUTH_METHOD: 'oidc' }).sort(), ['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_ISSUER', 'OIDC_REDIRECT_URI'])
  const base = { ...secrets, AUTH_METHOD: 'both', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' }
  t.same(problems({ ...base, OIDC_ISSUER: 'http://idp.example.com' }), ['OIDC_ISSUER'], 'http only on loopback')
  t.same(problems({ ...base, OIDC_ISSUER: 'http://127.0.0.1:9000' }), [])
  t.same(problems({ ...base, OIDC_ISSUER: 'http://localhost:9000' }), [])
  t.same(problems({ ...base, OIDC_ISSUER: 'https://idp.example.com', OIDC_REDIRECT_URI: 'https://tt.example.com/callback' }), ['OIDC_REDIRECT_URI'])
  const c = loadConfig({ ...base, OIDC_ISSUER: 'https://idp.example.com/realms/x', OIDC_ADMIN_EMAILS: 'Boss@Example.com, x@y.z' }, { cwd: dir(), dotenv: false })
  t.same(c.oidc?.adminEmails, ['boss@example.com', 'x@y.z'])
  t.equal(c.oidc?.usernameClaim, 'preferred_username')
})

t.test('cookie security follows PUBLIC_URL and NODE_ENV', async (t) => {
  t.equal(loadConfig({ ...secrets, PUBLIC_URL: 'https://tt.example.com' }, { cwd: dir(), dotenv: false }).sessionCookieSecure, true)
  t.equal(loadConfig({ ...secrets, NODE_ENV: 'production', UPSTREAM_URL: 'http://a', LOCAL_AUTH: 'password' }, { cwd: dir(), dotenv: false }).sessionCookieSecure, true)
  t.equal(loadConfig({ ...secrets, PUBLIC_URL: 'https://x', SESSION_COOKIE_SECURE: 'false' }, { cwd: dir(), dotenv: false }).sessionCookieSecure, false)
  t.same(problems({ ...secrets, PUBLIC_URL: 'https://x/app' }), ['PUBLIC_URL'])
})

t.test('HEADER_SIGNING_SECRET, which the upstream holds, cannot also be a session key', async (t) => {
  const shared = 'x'.repeat(40)
  t.same(problems({ SECRET_KEY: shared, HEADER_SIGNING_SECRET: shared }), ['HEADER_SIGNING_SECRET'])
  t.same(problems({ ...secrets, SECRET_KEY_PREVIOUS: secrets.HEADER_SIGNING_SECRET }), ['HEADER_SIGNING_SECRET'], 'nor a previous one')
  t.same(problems({ ...secrets, SECRET_KEY_PREVIOUS: 'p'.repeat(32) }), [])
})

t.test('TRUST_PROXY and SKIP_AUTH_PATHS forms', async (t) => {
  const c = (v: Record<string, string>) => loadConfig({ ...secrets, ...v }, { cwd: dir(), dotenv: false })
  t.equal(c({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(c({ TRUST_PROXY: 'FALSE' }).trustProxy, false)
  t.equal(c({ TRUST_PROXY: '' }).trustProxy, false)
  t.same(c({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, ['10.0.0.0/8', '127.0.0.1'])
  t.same(c({ TRUST_PROXY: '::1,fd00::/8' }).trustProxy, ['::1', 'fd00::/8'])
  for (const bad of ['999.1.1.1', 'cafe', '10.0.0.0/99', '::1/200', '10.0.0.0/8/8', '10.0.0.0/', '1.2.3']) {
    t.same(problems({ ...secrets, TRUST_PROXY: bad }), ['TRUST_PROXY'], `${bad}: a configuration error, not a TypeError at startup`)
  }
  t.same(c({ SKIP_AUTH_PATHS: '/static/, /api/v1/,/healthz' }).skipAuthPaths, ['/static/', '/api/v1/', '/healthz'])
  for (const bad of ['/', 'static/', '/a/../b', '/a%2f', '/a\\b', '//x']) t.same(problems({ ...secrets, SKIP_AUTH_PATHS: bad }), ['SKIP_AUTH_PATHS'], bad)
})

t.test('loopback hosts', async (t) => {
  for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) t.ok(isLoopbackHost(h), h)
  for (const h of ['10.0.0.1', 'example.com', 'localhost.example.com', 'app.localhost', '128.0.0.1', '::2', '0.0.0.0']) t.notOk(isLoopbackHost(h), h)
})

const production = { ...secrets, NODE_ENV: 'production', UPSTREAM_URL: 'http://app:5000' }
const refusal = (env: Record<string, string>): string => {
  try {
    loadConfig(env, { cwd: dir(), dotenv: false })
  } catch (err) {
    return (err as Error).message
  }
  return ''
}

t.test('production: local sign-in needs an explicit LOCAL_AUTH (docs/PROTOCOL.md#local-sign-in-in-production)', async (t) => {
  // The README's "set at least" recipe once started with name-only sign-in: anyone could type admin.
  for (const authMethod of [undefined, 'local', 'both']) {
    const env: Record<string, string> = { ...production, ...(authMethod !== undefined ? { AUTH_METHOD: authMethod } : {}) }
    if (authMethod === 'both') Object.assign(env, { OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' })
    t.same(problems(env), ['LOCAL_AUTH'], `AUTH_METHOD=${authMethod ?? '(unset)'}: LOCAL_AUTH unset is refused`)
    t.same(problems({ ...env, LOCAL_AUTH: '' }), ['LOCAL_AUTH'], 'set to empty is unset')
    t.same(problems({ ...env, LOCAL_AUTH: 'password' }), [])
    t.same(problems({ ...env, LOCAL_AUTH: 'username' }), [], 'name-only sign-in stays possible as an explicit choice')
  }
  const message = refusal(production)
  t.match(message, /LOCAL_AUTH: /)
  t.match(message, /username/)
  t.match(message, /anyone who (can )?reach(es)? (the|this) port/i, 'says why username is dangerous')
  t.match(message, /LOCAL_AUTH=password/, 'and what to write')
  t.same(problems({ ...production, AUTH_METHOD: 'oidc', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' }), [],
    'AUTH_METHOD=oidc: no local sign-in, nothing to choose')
  t.equal(loadConfig({ ...secrets }, { cwd: dir(), dotenv: false }).localAuth, 'username', 'development keeps its default')
})

t.test('HOST: loopback in development, every interface in production, HOST wins', async (t) => {
  t.equal(loadConfig({ ...secrets }, { cwd: dir(), dotenv: false }).host, '127.0.0.1')
  t.equal(loadConfig({ ...production, LOCAL_AUTH: 'password' }, { cwd: dir(), dotenv: false }).host, '0.0.0.0')
  t.equal(loadConfig({ ...secrets, HOST: '0.0.0.0' }, { cwd: dir(), dotenv: false }).host, '0.0.0.0')
  t.equal(loadConfig({ ...production, LOCAL_AUTH: 'password', HOST: '127.0.0.1' }, { cwd: dir(), dotenv: false }).host, '127.0.0.1')
})

t.test('a list variable set to empty is the empty list, not its default (docs/PROTOCOL.md#list-variables)', async (t) => {
  const c = (v: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({ ...secrets, ...v }, { cwd: dir(), dotenv: false })
  t.same(c({}).adminUsernames, ['admin'], 'unset: the default')
  for (const empty of ['', ' ', ',', ' , ,, ']) {
    t.same(c({ ADMIN_USERNAMES: empty }).adminUsernames, [], `ADMIN_USERNAMES=${JSON.stringify(empty)}: no admins by name`)
    t.same(c({ SKIP_AUTH_PATHS: empty }).skipAuthPaths, [], 'SKIP_AUTH_PATHS')
    t.same(c({ SECRET_KEY_PREVIOUS: empty }).secretKeys, [secrets.SECRET_KEY], 'SECRET_KEY_PREVIOUS')
    t.equal(c({ TRUST_PROXY: empty }).trustProxy, false, 'TRUST_PROXY: no proxies')
    const sso = { AUTH_METHOD: 'oidc', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' }
    t.same(c({ ...sso, OIDC_ADMIN_EMAILS: empty }).oidc?.adminEmails, [], 'OIDC_ADMIN_EMAILS')
    // OIDC_SCOPES is a (space-separated) list too: empty is no scopes, which lacks openid.
    t.same(problems({ ...secrets, ...sso, OIDC_SCOPES: empty.replace(/,/g, ' ') }), ['OIDC_SCOPES'], 'OIDC_SCOPES: empty is refused, not silently the default')
  }
  t.same(c({ ADMIN_USERNAMES: ' Root, ,boss ' }).adminUsernames, ['root', 'boss'], 'blanks between commas dropped')
})

t.test('TRUST_PROXY: a hop count is refused, with why and what to write instead', async (t) => {
  for (const hops of ['0', '1', '2', '10']) t.same(problems({ ...secrets, TRUST_PROXY: hops }), ['TRUST_PROXY'], hops)
  const message = refusal({ ...secrets, TRUST_PROXY: '1' })
  t.match(message, /hop count/)
  t.match(message, /immediate peer|connects? directly/i, 'says why')
  t.match(message, /TRUST_PROXY=127\.0\.0\.1/, 'says what to write instead')
})

t.test('development secrets: generated on the first start, loaded afterwards', async (t) => {
  const cwd = dir()
  const env = { IDENTITY_JWT: 'true', PUBLIC_URL: 'http://localhost:8080' }
  const first = loadConfig(env, { cwd, dotenv: false })
  t.same(first.generatedSecrets, ['SECRET_KEY', 'HEADER_SIGNING_SECRET', 'IDENTITY_JWT_KEY'])
  t.same(first.loadedSecrets, [])
  const second = loadConfig(env, { cwd, dotenv: false })
  t.same(second.generatedSecrets, [])
  t.same(second.loadedSecrets, ['SECRET_KEY', 'HEADER_SIGNING_SECRET', 'IDENTITY_JWT_KEY'])
  const explicit = loadConfig({ ...env, ...secrets }, { cwd, dotenv: false })
  t.same(explicit.loadedSecrets, ['IDENTITY_JWT_KEY'], 'only what was not set explicitly')
})

t.test('slow-client limits and the upstream pool: defaults, values, and refusals', async (t) => {
  const c = loadConfig({ ...secrets }, { cwd: dir(), dotenv: false })
  t.equal(c.upstreamPoolSize, 128)
  t.same(c.clientLimits, { headerTimeoutMs: 30_000, bodyIdleTimeoutMs: 30_000, bodyMinBytesPerSecond: 1024, maxConcurrentRequests: 32 }, 'one address: a quarter of the pool')
  const set = loadConfig({ ...secrets, CLIENT_HEADER_TIMEOUT: '10', CLIENT_BODY_IDLE_TIMEOUT: '60', CLIENT_BODY_MIN_RATE: '0', UPSTREAM_POOL_SIZE: '512' }, { cwd: dir(), dotenv: false })
  t.same(set.clientLimits, { headerTimeoutMs: 10_000, bodyIdleTimeoutMs: 60_000, bodyMinBytesPerSecond: 0, maxConcurrentRequests: 128 }, 'the default share follows the pool size')
  t.equal(set.upstreamPoolSize, 512)
  t.equal(loadConfig({ ...secrets, CLIENT_MAX_CONCURRENT_REQUESTS: '100' }, { cwd: dir(), dotenv: false }).clientLimits.maxConcurrentRequests, 100)

  t.same(problems({ ...secrets, CLIENT_HEADER_TIMEOUT: '0', CLIENT_BODY_IDLE_TIMEOUT: '1.5', CLIENT_BODY_MIN_RATE: '-1', UPSTREAM_POOL_SIZE: '1' }).sort(),
    ['CLIENT_BODY_IDLE_TIMEOUT', 'CLIENT_BODY_MIN_RATE', 'CLIENT_HEADER_TIMEOUT', 'UPSTREAM_POOL_SIZE'])
  t.same(problems({ ...secrets, CLIENT_MAX_CONCURRENT_REQUESTS: '128' }), ['CLIENT_MAX_CONCURRENT_REQUESTS'], 'one address may never hold the whole pool')
  t.equal(c.upstreamHeaderTimeoutMs, 60_000, 'UPSTREAM_HEADER_TIMEOUT: 60 s by default')
  t.equal(loadConfig({ ...secrets, UPSTREAM_HEADER_TIMEOUT: '300' }, { cwd: dir(), dotenv: false }).upstreamHeaderTimeoutMs, 300_000)
  for (const bad of ['0', '1.5', '-1', '3601', '60s']) {
    t.same(problems({ ...secrets, UPSTREAM_HEADER_TIMEOUT: bad }), ['UPSTREAM_HEADER_TIMEOUT'], `UPSTREAM_HEADER_TIMEOUT=${bad} refused: no "off", whole seconds`)
  }
  t.same(problems({ ...secrets, CLIENT_MAX_CONCURRENT_REQUESTS: '0' }), ['CLIENT_MAX_CONCURRENT_REQUESTS'], 'and there is no "unlimited"')
  try {
    loadConfig({ ...secrets, CLIENT_MAX_CONCURRENT_REQUESTS: '200', UPSTREAM_POOL_SIZE: '64' }, { cwd: dir(), dotenv: false })
    t.fail('should throw')
  } catch (err) {
    t.match((err as Error).message, /CLIENT_MAX_CONCURRENT_REQUESTS: must be less than UPSTREAM_POOL_SIZE \(64\)/)
  }
})

t.test('LOCAL_MFA: off, optional or required, and only where a password is asked', async (t) => {
  const password = { ...secrets, LOCAL_AUTH: 'password' }
  for (const value of ['off', 'optional', 'required'] as const) {
    t.equal(loadConfig({ ...password, LOCAL_MFA: value }, { cwd: dir(), dotenv: false }).localMfa, value)
    t.equal(loadConfig({ ...password, AUTH_METHOD: 'both', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'http://localhost:8080/auth/oidc/callback', LOCAL_MFA: value }, { cwd: dir(), dotenv: false }).localMfa, value, 'AUTH_METHOD=both: for its local accounts')
  }
  t.same(problems({ ...password, LOCAL_MFA: 'yes' }), ['LOCAL_MFA'], 'an unknown value is refused, not read as off')
  t.same(problems({ ...secrets, LOCAL_AUTH: 'username', LOCAL_MFA: 'off' }), [], 'off goes with any sign-in')
  for (const value of ['optional', 'required']) {
    t.same(problems({ ...secrets, LOCAL_AUTH: 'username', LOCAL_MFA: value }), ['LOCAL_MFA'], `${value} with the name-only sign-in is refused`)
    t.same(problems({ ...secrets, LOCAL_MFA: value }), ['LOCAL_MFA'], `${value} with the development default (username) is refused`)
    t.same(problems({ ...secrets, AUTH_METHOD: 'oidc', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: 'http://localhost:8080/auth/oidc/callback', LOCAL_MFA: value }), ['LOCAL_MFA'], `${value} without local sign-in is refused`)
  }
  try {
    loadConfig({ ...secrets, LOCAL_AUTH: 'username', LOCAL_MFA: 'required' }, { cwd: dir(), dotenv: false })
    t.fail('should throw')
  } catch (err) {
    t.match((err as Error).message, /LOCAL_MFA: .*LOCAL_AUTH=password/, 'says what to set')
  }
})
