import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/index.js'
import { KNOWN_VARIABLES, describeUnknownVariables, findUnknownVariables } from '../../src/config/variables.js'

const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }

t.test('a misspelt gateway variable is found, with the name it most likely means', async (t) => {
  t.same(findUnknownVariables(['UPSTREAM_ULR']), [{ name: 'UPSTREAM_ULR', didYouMean: 'UPSTREAM_URL' }])
  t.same(findUnknownVariables(['AUTH_METOD', 'OIDC_CLIENTID', 'ADMIN_USERNAME', 'SECRET_KEY_FIEL', 'SESSION_MAXAGE', 'HEADER_SIGNING_SECRETS', 'ALLOW_SELF_REGISTRATION']).map((u) => [u.name, u.didYouMean]), [
    ['ADMIN_USERNAME', 'ADMIN_USERNAMES'],
    ['ALLOW_SELF_REGISTRATION', undefined],
    ['AUTH_METOD', 'AUTH_METHOD'],
    ['HEADER_SIGNING_SECRETS', 'HEADER_SIGNING_SECRET'],
    ['OIDC_CLIENTID', 'OIDC_CLIENT_ID'],
    ['SECRET_KEY_FIEL', 'SECRET_KEY_FILE'],
    ['SESSION_MAXAGE', 'SESSION_MAX_AGE']
  ])
  t.same(findUnknownVariables(['AUTHENTICATION', 'UPSTREAM']), [{ name: 'AUTHENTICATION' }, { name: 'UPSTREAM' }], 'nothing close: no guess')
})

t.test('known names, <NAME>_FILE forms and other programs\' variables are not reported', async (t) => {
  t.same(findUnknownVariables(['UPSTREAM_URL', 'LOCAL_AUTH', 'AUTH_METHOD', 'SECRET_KEY_FILE', 'HEADER_SIGNING_SECRET_FILE', 'OIDC_CLIENT_SECRET_FILE', 'DATABASE_URL_FILE', 'ADMIN_USERNAMES', 'ALLOW_SELF_REGISTER']), [])
  t.same(findUnknownVariables(['PATH', 'HOME', 'NODE_OPTIONS', 'LOCAL_AUTHX', 'TZ', 'LANG']), [], 'only the gateway\'s prefixes are checked')
  t.same(findUnknownVariables(['AUTHGATE_SERVICE_HOST', 'AUTHGATE_SERVICE_PORT', 'AUTHGATE_SERVICE_PORT_HTTP', 'AUTHGATE_PORT', 'AUTHGATE_PORT_8080_TCP', 'AUTHGATE_PORT_8080_TCP_ADDR', 'UPSTREAM_PORT_80_TCP_PROTO']), [],
    'Kubernetes service links of a Service named authgate or upstream')
  t.equal(describeUnknownVariables(findUnknownVariables(['UPSTREAM_ULR', 'AUTHENTICATION'])), 'AUTHENTICATION, UPSTREAM_ULR (did you mean UPSTREAM_URL?)')
})

t.test('loadConfig reports them from the environment and .env, and starts anyway', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-vars-'))
  writeFileSync(join(cwd, '.env'), 'OIDC_ISUER=https://idp.example.com\n')
  const c = loadConfig({ ...secrets, UPSTREAM_ULR: 'http://app:5000', PATH: '/usr/bin' }, { cwd })
  t.same(c.unknownVariables, [{ name: 'OIDC_ISUER', didYouMean: 'OIDC_ISSUER' }, { name: 'UPSTREAM_ULR', didYouMean: 'UPSTREAM_URL' }])
  t.equal(c.upstreamUrl, undefined, 'the typo is not guessed at: the warning is what tells the operator')
  t.same(loadConfig({ ...secrets, UPSTREAM_URL: 'http://app:5000' }, { cwd: mkdtempSync(join(tmpdir(), 'authgate-vars-')), dotenv: false }).unknownVariables, [])
})

t.test('a known variable that this configuration does not use is not a typo', async (t) => {
  const c = loadConfig({ ...secrets, OIDC_ISSUER: 'https://idp.example.com', IDENTITY_JWT_AUDIENCE: 'x' }, { cwd: mkdtempSync(join(tmpdir(), 'authgate-vars-')), dotenv: false })
  t.same(c.unknownVariables, [], 'OIDC_ISSUER with AUTH_METHOD=local: unused, not unknown')
})

t.test('every variable the configuration reads is in the known list', async (t) => {
  // loadConfig counts what it reads as known, but a name read only under some settings (OIDC_* with
  // AUTH_METHOD=local) must be in the list, or setting it would be reported as a typo.
  const dir = new URL('../../src/config/', import.meta.url)
  const read = new Set<string>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(new URL(file, dir), 'utf8').matchAll(/\bget(?:List)?\('([A-Z][A-Z0-9_]*)'/g)) read.add(m[1]!)
  }
  t.ok(read.size > 30, `found ${read.size} reads`)
  for (const name of read) t.ok(KNOWN_VARIABLES.has(name), name)
})
