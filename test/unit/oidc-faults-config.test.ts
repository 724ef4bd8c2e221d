// OIDC_TIMEOUT (per provider as OIDC_<ID>_TIMEOUT) and OIDC_RATE_LIMIT: their defaults, their
// bounds, where each provider's timeout comes from, and what `authgate config check` shows.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, type Env } from '../../src/config/index.js'
import { describeConfig } from '../../src/config/describe.js'

const dir = (): string => mkdtempSync(join(tmpdir(), 'authgate-config-'))
const base: Env = {
  SECRET_KEY: 's'.repeat(32),
  HEADER_SIGNING_SECRET: 'h'.repeat(32),
  AUTH_METHOD: 'oidc',
  OIDC_ISSUER: 'https://idp.example.com',
  OIDC_CLIENT_ID: 'c',
  OIDC_CLIENT_SECRET: 'x',
  OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback'
}
const several: Env = {
  SECRET_KEY: 's'.repeat(32),
  HEADER_SIGNING_SECRET: 'h'.repeat(32),
  AUTH_METHOD: 'oidc',
  OIDC_PROVIDERS: 'corp,partner',
  OIDC_CORP_ISSUER: 'https://corp.example.com',
  OIDC_CORP_CLIENT_ID: 'c',
  OIDC_CORP_CLIENT_SECRET: 'x',
  OIDC_PARTNER_ISSUER: 'https://partner.example.com',
  OIDC_PARTNER_CLIENT_ID: 'p',
  OIDC_PARTNER_CLIENT_SECRET: 'y',
  OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback'
}
const load = (env: Env): ReturnType<typeof loadConfig> => loadConfig(env, { cwd: dir(), dotenv: false, writeDevSecrets: false })
const problems = (env: Env): Array<{ name: string, message: string }> => {
  try {
    load(env)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
}

t.test('defaults: 10 s per IdP request, 120 flows a minute per address', async (t) => {
  const c = load(base)
  t.equal(c.oidc?.timeout, 10)
  t.equal(c.oidcRateLimit, 120)
  const settings = new Map(describeConfig(c, base, base).map((s) => [s.name, s]))
  t.same(settings.get('OIDC_TIMEOUT'), { name: 'OIDC_TIMEOUT', value: '10', source: 'default' })
  t.same(settings.get('OIDC_RATE_LIMIT'), { name: 'OIDC_RATE_LIMIT', value: '120', source: 'default' })
})

t.test('set values are used, and config check says so', async (t) => {
  const env = { ...base, OIDC_TIMEOUT: '3', OIDC_RATE_LIMIT: '0' }
  const c = load(env)
  t.equal(c.oidc?.timeout, 3)
  t.equal(c.oidcRateLimit, 0, '0: no limit')
  const settings = new Map(describeConfig(c, env, env).map((s) => [s.name, s]))
  t.same(settings.get('OIDC_TIMEOUT'), { name: 'OIDC_TIMEOUT', value: '3', source: 'environment' })
  t.same(settings.get('OIDC_RATE_LIMIT'), { name: 'OIDC_RATE_LIMIT', value: '0', source: 'environment' })
})

t.test('bad values are refused with the variable named', async (t) => {
  for (const value of ['0', '61', '1.5', '-1', 'ten', '']) {
    const found = problems({ ...base, OIDC_TIMEOUT: value })
    // An empty value counts as unset (the default): every other one is refused.
    if (value === '') t.same(found, [], 'empty: the default')
    else t.match(found, [{ name: 'OIDC_TIMEOUT', message: /whole number of seconds from 1 to 60/ }], `OIDC_TIMEOUT=${value}`)
  }
  for (const value of ['-1', 'many', '2.5', '100001']) {
    t.match(problems({ ...base, OIDC_RATE_LIMIT: value }), [{ name: 'OIDC_RATE_LIMIT', message: /sign-ins per minute per client address \(0 turns the limit off\)/ }], `OIDC_RATE_LIMIT=${value}`)
  }
})

t.test('several providers: OIDC_TIMEOUT is every provider\'s default, OIDC_<ID>_TIMEOUT its own', async (t) => {
  const c = load({ ...several, OIDC_TIMEOUT: '5', OIDC_PARTNER_TIMEOUT: '20' })
  t.same(c.oidcProviders.map((p) => [p.id, p.timeout]), [['corp', 5], ['partner', 20]])
  t.same(load(several).oidcProviders.map((p) => p.timeout), [10, 10], 'neither set: the default')
  t.match(problems({ ...several, OIDC_CORP_TIMEOUT: '0' }), [{ name: 'OIDC_CORP_TIMEOUT', message: /from 1 to 60/ }], 'a provider\'s own value is checked under its own name')
  t.equal(load({ ...several, OIDC_RATE_LIMIT: '7' }).oidcRateLimit, 7, 'the rate limit is per client address, for all providers together')
  // config check: the shared settings together, then each provider's own lines.
  const env = { ...several, OIDC_TIMEOUT: '5' }
  const names = describeConfig(load(env), env, env).map((s) => s.name)
  const firstProviderLine = names.indexOf('OIDC_CORP_ISSUER')
  t.same(names.slice(firstProviderLine).filter((n) => /^OIDC_(TIMEOUT|RATE_LIMIT|REFRESH_INTERVAL|SCOPES)$/.test(n)), [], 'no shared OIDC_* line after the providers\' lines')
})

t.test('AUTH_METHOD=local: neither is used', async (t) => {
  const env = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32), OIDC_RATE_LIMIT: 'nonsense' }
  const c = load(env)
  t.equal(c.oidcRateLimit, 0)
  const settings = new Map(describeConfig(c, env, env).map((s) => [s.name, s]))
  t.equal(settings.get('OIDC_RATE_LIMIT')?.value, undefined, 'config check: not used with this configuration')
  t.equal(settings.get('OIDC_TIMEOUT')?.value, undefined)
  t.same(c.unknownVariables, [], 'a known name, not a typo')
})
