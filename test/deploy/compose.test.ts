// deploy/compose/*.yml read as Compose reads them: only the gateway publishes a port, secrets come from
// files, both processes share SKIP_AUTH_PATHS and the header secret, the gateway's configuration
// loads as its container would load it, TimeTracker's entrypoint wrapper exports its secrets, and the
// demo IdP override starts a provider that registers the gateway. The stack itself is brought up by
// deploy/container/check.sh `compose` (CI, after the tests).
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { isAlias, parseDocument } from 'yaml'
import { loadConfig } from '../../src/config/index.js'
import { KNOWN_VARIABLES } from '../../src/config/variables.js'
import { ROOT, generateSecrets, imageEnvironment, interpolate, readYaml, runWrapper, tempDir } from './deploy-files.js'

const compose = readYaml('deploy/compose/docker-compose.yml')
const ci = readYaml('deploy/compose/ci/docker-compose.ci.yml')
const demo = readYaml('deploy/compose/docker-compose.demo-idp.yml')
const services = compose.services as Record<string, any>
const PRESET_SKIP = '/api/v1/,/static/,/_health,/_ready'

/** A service's environment with Compose's interpolation applied. */
function environment (service: any, vars: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), vars)]))
}

t.test('only the gateway publishes a port: 8080, on 127.0.0.1 unless the operator says otherwise', async (t) => {
  t.same(Object.keys(services).sort(), ['authgate', 'db', 'timetracker'])
  for (const [name, service] of Object.entries(services)) {
    if (name === 'authgate') continue
    t.notOk(service.ports, `${name} publishes nothing`)
    t.notOk(service.network_mode, `${name} has no network mode of its own (host would publish everything)`)
  }
  // eslint-disable-next-line no-template-curly-in-string -- Compose's own interpolation, as written in the file
  t.same(services.authgate.ports, ['${AUTHGATE_PUBLISH:-127.0.0.1:8080}:8080'])
  t.equal(interpolate(services.authgate.ports[0], {}), '127.0.0.1:8080:8080')
  t.same(ci.services.authgate.ports, undefined, 'CI publishes nothing more')
})

t.test('TimeTracker and PostgreSQL are on the internal network only; the gateway reaches TimeTracker there', async (t) => {
  t.same(services.timetracker.networks, ['backend'])
  t.same(services.db.networks, ['backend'])
  t.same(services.authgate.networks.sort(), ['backend', 'frontend'])
  t.equal(compose.networks.backend.internal, true, 'no route out, nothing published')
  t.equal(environment(services.authgate, { PUBLIC_URL: 'https://tt.example.com' }).UPSTREAM_URL, 'http://timetracker:8080')
  t.match(services.timetracker.command, /--bind 0\.0\.0\.0:8080 /, 'TimeTracker listens where UPSTREAM_URL points')
})

t.test('every secret is a Compose secret from a file, and no environment variable holds one', async (t) => {
  const declared = compose.secrets as Record<string, { file: string }>
  for (const [name, secret] of Object.entries(declared)) t.equal(secret.file, `./secrets/${name}`, `${name} from a file`)
  for (const [name, service] of Object.entries(services)) {
    const env = environment(service, { PUBLIC_URL: 'https://tt.example.com' })
    for (const [key, value] of Object.entries(env)) {
      if (key.endsWith('_FILE')) {
        const m = /^\/run\/secrets\/(\w+)$/.exec(value)
        t.ok(m, `${name} ${key} is a mounted secret: ${value}`)
        t.ok(service.secrets.includes(m?.[1]), `${name} mounts ${m?.[1]}`)
        t.ok(declared[m?.[1] ?? ''], `${m?.[1]} is declared`)
      } else if (/SECRET|PASSWORD|_KEY$/.test(key) || key === 'DATABASE_URL') {
        t.equal(value, '', `${name} ${key} holds no value (${key}_FILE does)`)
      }
    }
    for (const secret of service.secrets ?? []) t.ok(declared[secret], `${name}: ${secret} declared`)
  }
  t.same(services.timetracker.secrets.sort(), ['header_signing_secret', 'timetracker_database_url', 'timetracker_secret_key'], 'TimeTracker sees none of the gateway\'s own secrets')
  t.notOk(services.authgate.secrets.some((s: string) => s.startsWith('timetracker_') || s === 'postgres_password'), 'the gateway sees none of TimeTracker\'s or the superuser\'s')
})

t.test('one SKIP_AUTH_PATHS (one YAML anchor) and one header secret for both processes', async (t) => {
  const doc = parseDocument(readFileSync(join(ROOT, 'deploy/compose/docker-compose.yml'), 'utf8'))
  for (const name of ['authgate', 'timetracker']) {
    const node = doc.getIn(['services', name, 'environment', 'SKIP_AUTH_PATHS'], true)
    t.ok(isAlias(node) && node.source === 'skip-auth-paths', `${name}: SKIP_AUTH_PATHS is *skip-auth-paths`)
  }
  t.equal(services.authgate.environment.SKIP_AUTH_PATHS, PRESET_SKIP, 'the TimeTracker preset of docs/TIMETRACKER.md')
  t.equal(services.timetracker.environment.SKIP_AUTH_PATHS, PRESET_SKIP)
  t.equal(services.authgate.environment.HEADER_SIGNING_SECRET_FILE, '/run/secrets/header_signing_secret')
  t.equal(services.timetracker.environment.HEADER_SIGNING_SECRET_FILE, '/run/secrets/header_signing_secret')
})

t.test('TimeTracker runs through the integration, as docs/TIMETRACKER.md says', async (t) => {
  const tt = services.timetracker
  t.match(tt.image, 'ghcr.io/drytrix/timetracker')
  t.equal(tt.environment.PYTHONPATH, '/opt/authgate-timetracker')
  t.match(tt.command, /^gunicorn .*--worker-class eventlet --workers 1 .*'authgate_timetracker:create_app\(\)'$/)
  t.equal(tt.environment.LICENSE_SERVER_ENABLED, 'false')
  const mounts = tt.volumes.filter((v: string) => v.includes('/opt/authgate-timetracker/'))
  t.same(mounts.map((v: string) => v.split(':')[1]).sort(), ['authgate_timetracker.py', 'authgate_verify.py', 'flask_login_recipe.py'].map((f) => `/opt/authgate-timetracker/${f}`))
  for (const mount of mounts) {
    const [source, , mode] = mount.split(':')
    t.equal(mode, 'ro', `${source} read-only`)
    t.ok(existsSync(join(ROOT, 'deploy/compose', source)), `${source} exists in the repository`)
  }
  t.type(tt.command, 'string', 'a string, so an override replaces it (podman-compose 1.0 appends lists)')
  t.type(tt.entrypoint, 'string')
})

t.test('TimeTracker\'s entrypoint wrapper exports SECRET_KEY and DATABASE_URL from the secret files, then runs the image\'s entrypoint with the command', async (t) => {
  const { dir, remove } = tempDir('authgate-compose-wrapper-')
  t.teardown(remove)
  generateSecrets(join(dir, 'secrets'))
  // Compose unescapes $$; sh -c 'SCRIPT' NAME, as the container runs it (its words split as Compose splits a string).
  const entrypoint = interpolate(services.timetracker.entrypoint, {})
  const m = /^sh -c '([^']*)' (\w+)$/.exec(entrypoint)
  t.ok(m, `sh -c '…' NAME: ${entrypoint}`)
  const script = m![1]!.replaceAll('/run/secrets/', `${dir}/secrets/`)
  const out = runWrapper(script, m![2]!, ['gunicorn', '--bind', '0.0.0.0:8080', 'authgate_timetracker:create_app()'], '/app/docker/entrypoint_fixed.sh', dir)
  t.equal(out.env.SECRET_KEY, readFileSync(join(dir, 'secrets/timetracker_secret_key'), 'utf8').trim())
  t.equal(out.env.DATABASE_URL, readFileSync(join(dir, 'secrets/timetracker_database_url'), 'utf8').trim())
  t.match(out.env.DATABASE_URL, /^postgresql\+psycopg2:\/\/timetracker:[0-9a-f]{48}@db:5432\/timetracker$/)
  t.equal(out.argv, 'gunicorn --bind 0.0.0.0:8080 authgate_timetracker:create_app()', 'the command reaches the image\'s entrypoint')
})

t.test('the gateway\'s configuration loads as its container loads it: the image\'s ENV, then the file\'s, secrets from the generated files', async (t) => {
  const { dir, remove } = tempDir('authgate-compose-config-')
  t.teardown(remove)
  generateSecrets(join(dir, 'secrets'))
  const env = { ...imageEnvironment(), ...environment(services.authgate, { PUBLIC_URL: 'https://tt.example.com' }) }
  for (const key of Object.keys(env)) t.ok(KNOWN_VARIABLES.has(key), `${key} is a gateway variable`)
  for (const [k, v] of Object.entries(env)) if (k.endsWith('_FILE')) env[k] = v.replace('/run/secrets/', `${dir}/secrets/`)
  const config = loadConfig(env, { cwd: dir, dotenv: false })
  t.equal(config.production, true)
  t.match(config.databaseUrl, /^postgres:\/\/authgate:[0-9a-f]{48}@db:5432\/authgate$/, 'PostgreSQL, not the image\'s SQLite')
  t.equal(config.upstreamUrl?.href, 'http://timetracker:8080/')
  t.equal(config.localAuth, 'password')
  t.same(config.unknownVariables, [])
  t.throws(() => interpolate(services.authgate.environment.PUBLIC_URL, {}), /set PUBLIC_URL in deploy\/compose\/\.env/, 'no PUBLIC_URL: Compose stops with what to write')
  t.equal(imageEnvironment().DATABASE_URL, undefined, 'the image sets no DATABASE_URL that would clash with DATABASE_URL_FILE')
})

t.test('generate-secrets.sh: every declared secret, random, 0444 in a 0700 directory, kept when run again', async (t) => {
  const { dir, remove } = tempDir('authgate-compose-secrets-')
  t.teardown(remove)
  const secrets = join(dir, 'secrets')
  generateSecrets(secrets)
  const declared = [...Object.keys(compose.secrets), ...Object.keys(demo.secrets)].sort()
  t.same(readdirSync(secrets).sort(), declared)
  t.equal(statSync(secrets).mode & 0o777, 0o700)
  for (const name of declared) {
    t.equal(statSync(join(secrets, name)).mode & 0o777, 0o444, `${name} 0444`)
    t.ok(readFileSync(join(secrets, name), 'utf8').trim().length >= 32, `${name} long enough for the gateway's 32-character minimum`)
  }
  const before = readFileSync(join(secrets, 'header_signing_secret'), 'utf8')
  t.match(generateSecrets(secrets), /kept +\S+header_signing_secret/)
  t.equal(readFileSync(join(secrets, 'header_signing_secret'), 'utf8'), before, 'not replaced')
  generateSecrets(join(dir, 'other'), { DB_HOST: 'pg.example.internal:5432' })
  t.match(readFileSync(join(dir, 'other/authgate_database_url'), 'utf8'), /@pg\.example\.internal:5432\/authgate\n$/)
  t.not(readFileSync(join(dir, 'other/header_signing_secret'), 'utf8'), before, 'each run its own values')
})

t.test('PostgreSQL: one server, the init script mounted, the superuser password from a file, a healthcheck over TCP', async (t) => {
  const db = services.db
  t.equal(db.environment.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres_password')
  t.ok(db.volumes.includes('./postgres/init-databases.sh:/docker-entrypoint-initdb.d/init-databases.sh:ro'))
  t.ok(statSync(join(ROOT, 'deploy/compose/postgres/init-databases.sh')).mode & 0o100, 'the init script is executable')
  t.same(db.secrets.sort(), ['authgate_database_url', 'postgres_password', 'timetracker_database_url'], 'it reads the two URLs for their roles\' passwords')
  t.match(db.healthcheck.test.join(' '), /pg_isready .*-h 127\.0\.0\.1/, 'not ready while the init server listens on its socket only')
  for (const name of ['authgate', 'timetracker']) t.same(services[name].depends_on, { db: { condition: 'service_healthy' } })
})

t.test('CI\'s override changes the images (and how the stand-in upstream starts), nothing else', async (t) => {
  t.same(Object.keys(ci.services).sort(), ['authgate', 'db', 'timetracker'])
  t.same(Object.keys(ci.services.authgate), ['image'])
  t.same(Object.keys(ci.services.db), ['image'])
  t.same(Object.keys(ci.services.timetracker).sort(), ['command', 'entrypoint', 'image', 'init', 'volumes'])
  t.same(ci.services.timetracker.volumes, ['../../integrations/flask/demo_app.py:/opt/authgate-timetracker/demo_app.py:ro'])
  t.match(ci.services.timetracker.command, /--secret-file \/run\/secrets\/header_signing_secret/, 'the stand-in reads the same secret file')
})

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address() as { port: number }; s.close(() => { resolve(port) }) })
  })
}

t.test('the demo IdP override: development only, shares the gateway\'s network namespace, and its provider registers the gateway', async (t) => {
  const idp = demo.services['demo-idp']
  t.equal(idp.network_mode, 'service:authgate', 'http://127.0.0.1:9400 is the same provider for the browser and the gateway')
  t.same(demo.services.authgate.ports, ['127.0.0.1:9400:9400'], 'its port, on loopback only')
  t.notOk(idp.environment.NODE_ENV, 'not production (it refuses)')
  const vars = { PUBLIC_URL: 'http://localhost:8080' }
  const gatewayEnv = { ...imageEnvironment(), ...environment(services.authgate, vars), ...environment(demo.services.authgate, vars) }
  const idpEnv = environment(idp, vars)
  for (const key of ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET_FILE', 'PUBLIC_URL']) t.equal(idpEnv[key], gatewayEnv[key], `${key}: one value for both`)
  t.match(readFileSync(join(ROOT, 'deploy/compose/demo-idp.Dockerfile'), 'utf8'), /Development only/)

  const { dir, remove } = tempDir('authgate-compose-demo-')
  t.teardown(remove)
  generateSecrets(join(dir, 'secrets'))
  for (const env of [gatewayEnv, idpEnv]) env.OIDC_CLIENT_SECRET_FILE = env.OIDC_CLIENT_SECRET_FILE!.replace('/run/secrets/', `${dir}/secrets/`)
  for (const [k, v] of Object.entries(gatewayEnv)) if (k.endsWith('_FILE')) gatewayEnv[k] = v.replace('/run/secrets/', `${dir}/secrets/`)
  const config = loadConfig(gatewayEnv, { cwd: dir, dotenv: false })
  t.equal(config.authMethod, 'both')
  t.equal(config.oidc?.issuer.href, 'http://127.0.0.1:9400/', 'an http issuer the gateway accepts: on loopback')
  t.same(config.unknownVariables, [])

  // The provider as the container starts it (its port moved off 9400, which may be taken here).
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/demo/idp-server.ts')], {
    env: { PATH: process.env.PATH, ...idpEnv, OIDC_ISSUER: issuer, DEMO_IDP_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGTERM') })
  let output = ''
  child.stdout.on('data', (c) => { output += String(c) })
  child.stderr.on('data', (c) => { output += String(c) })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no start line within 20 s: ${output}`)) }, 20_000)
    child.stdout.on('data', () => { if (output.includes('accounts:')) { clearTimeout(timer); resolve() } })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${output}`)) })
  })
  t.match(output, /development only/)
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json() as { issuer: string }
  t.equal(discovery.issuer, issuer)
  const authorize = (redirectUri: string): Promise<Response> => fetch(`${issuer}/auth?${new URLSearchParams({
    client_id: config.oidc!.clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256'
  })}`, { redirect: 'manual' })
  const accepted = await authorize(config.oidc!.redirectUri.href)
  t.equal(accepted.status, 303, 'the gateway\'s redirect URI is registered')
  t.match(accepted.headers.get('location'), /^\/interaction\//)
  t.equal((await authorize('http://evil.example/auth/oidc/callback')).status, 400, 'another one is not')

  const refused = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/demo/idp-server.ts')], { env: { PATH: process.env.PATH, ...idpEnv, NODE_ENV: 'production' } })
  let refusal = ''
  refused.stderr.on('data', (c) => { refusal += String(c) })
  t.equal(await new Promise((resolve) => refused.on('exit', resolve)), 2)
  t.match(refusal, /development only/)
})
