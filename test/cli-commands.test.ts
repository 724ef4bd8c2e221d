// The operator's CLI beyond the user store: help and version, `config check` (the server's own
// verdict, secrets masked, nothing written), `secrets generate`, and commands that only read never
// creating or migrating a database. Every command runs as a real process, in its own directory.
import t, { type Test } from 'tap'
import { PROVIDER_SETTINGS } from '../src/config/oidc.js'
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import pg from 'pg'
import SQLite from 'better-sqlite3'
import { createPostgresSchema, TEST_DATABASE_URL } from './support/gateway.js'
import { runNode, type ProcessResult } from './support/process.js'

const BIN = resolve('src/cli/bin.ts')
const MAIN = resolve('src/main.ts')
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version

type Result = ProcessResult

/** Only PATH is inherited: the child sees exactly the variables a test gives it. */
async function node (script: string, args: string[], opts: { cwd: string, env?: Record<string, string>, stdin?: string }): Promise<Result> {
  return await runNode(script, args, { cwd: opts.cwd, env: { PATH: process.env.PATH ?? '', ...opts.env }, stdin: opts.stdin })
}

const cli = async (args: string[], opts: { cwd?: string, env?: Record<string, string>, stdin?: string } = {}): Promise<Result> =>
  await node(BIN, args, { cwd: opts.cwd ?? dir(), env: opts.env, stdin: opts.stdin })
const dir = (): string => mkdtempSync(join(tmpdir(), 'authgate-cli-cmd-'))

t.test('--version prints the package version', async (t) => {
  for (const flag of ['--version', '-v']) {
    const r = await cli([flag])
    t.equal(r.code, 0, flag)
    t.equal(r.stdout.trim(), VERSION, flag)
  }
})

t.test('help: the whole, and each command on its own', async (t) => {
  const all = await cli(['--help'])
  t.equal(all.code, 0)
  for (const command of ['config check', 'secrets generate', 'migrate', 'users', 'sessions revoke', '--version']) t.match(all.stdout, command)

  for (const args of [['users', '--help'], ['users', '-h'], ['help', 'users'], ['users', 'add', '--help']]) {
    const r = await cli(args)
    t.equal(r.code, 0, args.join(' '))
    t.match(r.stdout, /^Usage: authgate users <subcommand>/, args.join(' '))
    t.match(r.stdout, /set-admin <username> <true\|false>/)
    t.notMatch(r.stdout, /secrets generate/, 'the users help only')
  }
  const sessions = await cli(['sessions', '--help'])
  t.equal(sessions.code, 0)
  t.match(sessions.stdout, /^Usage: authgate sessions revoke <username>/)
  t.notMatch(sessions.stdout, /set-password/)
  for (const command of ['config', 'secrets', 'migrate']) {
    const r = await cli([command, '--help'])
    t.equal(r.code, 0, command)
    t.match(r.stdout, new RegExp(`^Usage: authgate ${command}`), command)
  }
  const bare = await cli(['users'])
  t.equal(bare.code, 1, 'a command without its subcommand: its help, and a failure')
  t.match(bare.stdout, /^Usage: authgate users/)
})

t.test('unknown options and commands are usage errors (2), without a stack trace', async (t) => {
  for (const [args, message] of [
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['users', 'list', '--admin'], /users list: unknown option --admin/],
    [['config', 'verify'], /unknown command: config verify/],
    [['users', 'remove', 'x'], /unknown command: users remove/],
    [['secrets', 'generate', 'extra'], /unknown command: secrets generate extra/],
    [['users', 'add', 'alice', 'bob'], /users add: unexpected argument bob/],
    [['migrate', 'now'], /migrate: unexpected argument now/]
  ] as const) {
    const r = await cli([...args])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, message)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('--help loads neither the database drivers nor the configuration', async (t) => {
  // What makes `npx authgate --help` quick: the command modules are imported only when they run.
  const probe = `import { createRequire } from 'node:module'
const { run } = await import(${JSON.stringify(resolve('src/cli/index.ts'))})
await run(['--help'], () => {})
await run(['users', '--help'], () => {})
console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)))`
  const file = join(dir(), 'probe.mts')
  writeFileSync(file, probe)
  const r = await node(file, [], { cwd: dir() })
  t.equal(r.code, 0, r.stderr)
  const loaded = JSON.parse(r.stdout) as string[]
  for (const heavy of ['better-sqlite3', '/pg/', 'dotenv', 'kysely']) t.notOk(loaded.some((m) => m.includes(heavy)), `${heavy} not loaded`)
  // The probe can fail: once a command runs, the driver shows in the same list.
  const used = `import { createRequire } from 'node:module'
const { run } = await import(${JSON.stringify(resolve('src/cli/index.ts'))})
process.env.DATABASE_URL = 'sqlite::memory:'
await run(['migrate'], () => {})
console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)))`
  writeFileSync(file, used)
  const r2 = await node(file, [], { cwd: dir() })
  t.ok((JSON.parse(r2.stdout) as string[]).some((m) => m.includes('better-sqlite3')), 'migrate does load the driver')
})

const strongKey = 'K'.repeat(20) + 'sEcReTkEy' + 'k'.repeat(19)
const strongSigning = 'H'.repeat(20) + 'sIgNiNg' + 'h'.repeat(21)

/** No run of 8 characters of the secret appears in the text. */
function leaks (text: string, secret: string): boolean {
  for (let i = 0; i + 8 <= secret.length; i++) if (text.includes(secret.slice(i, i + 8)) && !/^(.)\1+$/.test(secret.slice(i, i + 8))) return true
  return false
}

type CheckedSetting = { name: string, value?: string, source: string }

/**
 * `config check` and `config check --json` on one configuration: both succeed, and no output shows
 * any part of the named secrets. The text report, and the settings of the JSON one.
 */
async function configCheck (t: Test, cwd: string, env: Record<string, string>, secrets: Record<string, string>): Promise<{ text: Result, valid: boolean, settings: CheckedSetting[] }> {
  const text = await cli(['config', 'check'], { cwd, env })
  t.equal(text.code, 0, text.stderr)
  const json = await cli(['config', 'check', '--json'], { cwd, env })
  t.equal(json.code, 0, json.stderr)
  for (const [name, secret] of Object.entries(secrets)) t.notOk(leaks(text.stdout + text.stderr + json.stdout, secret), `no part of ${name}`)
  const { valid, settings } = JSON.parse(json.stdout) as { valid: boolean, settings: CheckedSetting[] }
  return { text, valid, settings }
}

t.test('config check: a valid configuration, its sources, secrets masked, nothing written', async (t) => {
  const cwd = dir()
  writeFileSync(join(cwd, 'signing.secret'), strongSigning + '\n')
  writeFileSync(join(cwd, '.env'), 'APP_NAME=Time Tracker\nUPSTREAM_URL=http://127.0.0.1:5000/app\n')
  const env = {
    NODE_ENV: 'production',
    LOCAL_AUTH: 'password',
    SECRET_KEY: strongKey,
    HEADER_SIGNING_SECRET_FILE: 'signing.secret',
    DATABASE_URL: 'postgres://authgate:pa55word@db.example:5432/authgate',
    PORT: '9090',
    UPSTREAM_ULR: 'typo'
  }
  const { text: r, valid, settings } = await configCheck(t, cwd, env, { SECRET_KEY: strongKey, HEADER_SIGNING_SECRET: strongSigning })
  t.match(r.stdout, /Configuration valid \(production\)/)
  t.match(r.stdout, /PORT=9090 +# environment/)
  t.match(r.stdout, /HOST=0\.0\.0\.0 +# default/, 'the production default, as the server computes it')
  t.match(r.stdout, /APP_NAME="Time Tracker" +# \.env/)
  t.match(r.stdout, /UPSTREAM_URL=http:\/\/127\.0\.0\.1:5000\/app +# \.env/)
  t.match(r.stdout, /SECRET_KEY=\[secret, 48 characters\] +# environment/)
  t.match(r.stdout, /HEADER_SIGNING_SECRET=\[secret, 48 characters\] +# HEADER_SIGNING_SECRET_FILE=signing\.secret/)
  t.match(r.stdout, /DATABASE_URL=postgres:\/\/authgate:\*\*\*@db\.example:5432\/authgate/)
  t.notMatch(r.stdout, /pa55word/, 'the database password is masked')
  t.match(r.stdout, /unknown variables, ignored: UPSTREAM_ULR \(did you mean UPSTREAM_URL\?\)/, 'the server\'s warnings too')

  t.equal(valid, true, '--json says so too')
  t.same(settings.find((s) => s.name === 'SESSION_MAX_AGE'), { name: 'SESSION_MAX_AGE', value: '86400', source: 'default' })

  const dev = dir()
  const d = await cli(['config', 'check'], { cwd: dev })
  t.equal(d.code, 0, d.stderr)
  t.match(d.stdout, /SECRET_KEY=\[secret, \d+ characters\] +# generated at the first start/)
  t.match(d.stdout, /not set: the server generates development secrets at its first start/)
  t.same(readdirSync(dev), [], 'no ./data, no dev-secrets.json, no database: a check writes nothing')
})

t.test('config check with OIDC_PROVIDERS: each provider\'s settings under its own names, secrets masked', async (t) => {
  const cwd = dir()
  const corpSecret = 'C'.repeat(10) + 'cOrPsEcReT' + 'c'.repeat(10)
  const partnerSecret = 'P'.repeat(10) + 'pArTnErSeC' + 'p'.repeat(10)
  writeFileSync(join(cwd, 'partner.secret'), partnerSecret + '\n')
  const env = {
    AUTH_METHOD: 'both',
    OIDC_PROVIDERS: 'corp,partner',
    OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback',
    OIDC_SCOPES: 'openid profile email groups',
    OIDC_ADMIN_GROUP: 'tt-admins',
    ALLOWED_GROUPS: 'staff',
    OIDC_CORP_ISSUER: 'https://sso.corp.example.com/realms/staff',
    OIDC_CORP_CLIENT_ID: 'tt-corp',
    OIDC_CORP_CLIENT_SECRET: corpSecret,
    OIDC_PARTNER_ISSUER: 'https://login.partner.example.org/tenant/v2.0',
    OIDC_PARTNER_CLIENT_ID: 'tt-partner',
    OIDC_PARTNER_CLIENT_SECRET_FILE: 'partner.secret',
    OIDC_PARTNER_ADMIN_GROUP: '',
    OIDC_PARTNER_ALLOWED_GROUPS: '',
    OIDC_PARTNER_BUTTON_TEXT: 'Partner organisation'
  }
  const { text: r, settings } = await configCheck(t, cwd, env, { 'the corp secret': corpSecret, 'the partner secret': partnerSecret })
  t.match(r.stdout, /^ {2}OIDC_PROVIDERS=corp,partner +# environment$/m)
  t.match(r.stdout, /^ {2}OIDC_CORP_ISSUER=https:\/\/sso\.corp\.example\.com\/realms\/staff +# environment$/m)
  t.match(r.stdout, /^ {2}OIDC_CORP_CLIENT_SECRET=\[secret, 30 characters\] +# environment$/m, 'masked as OIDC_CLIENT_SECRET is')
  t.match(r.stdout, /^ {2}OIDC_PARTNER_CLIENT_SECRET=\[secret, 30 characters\] +# OIDC_PARTNER_CLIENT_SECRET_FILE=partner\.secret$/m)
  // Inherited: the shared variable it came from; its own, even empty: its own; neither: the default.
  t.match(r.stdout, /^ {2}OIDC_CORP_SCOPES="openid profile email groups" +# from OIDC_SCOPES \(environment\)$/m)
  t.match(r.stdout, /^ {2}OIDC_CORP_ADMIN_GROUP=tt-admins +# from OIDC_ADMIN_GROUP \(environment\)$/m)
  t.match(r.stdout, /^ {2}OIDC_PARTNER_ADMIN_GROUP= +# environment$/m, 'set to empty: no admin group for partner')
  t.match(r.stdout, /^ {2}OIDC_CORP_ALLOWED_GROUPS=staff +# from ALLOWED_GROUPS \(environment\)$/m)
  t.match(r.stdout, /^ {2}OIDC_PARTNER_ALLOWED_GROUPS= +# environment$/m)
  t.match(r.stdout, /^ {2}OIDC_CORP_BUTTON_TEXT="Sign in with corp" +# default$/m)
  t.match(r.stdout, /^ {2}OIDC_PARTNER_BUTTON_TEXT="Partner organisation" +# environment$/m)
  t.match(r.stdout, /^ {2}OIDC_PARTNER_REDIRECT_URI=https:\/\/tt\.example\.com\/auth\/oidc\/callback +# from OIDC_REDIRECT_URI \(environment\)$/m)
  t.match(r.stdout, /^ {2}OIDC_SCOPES="openid profile email groups" +# environment$/m, 'the shared default itself, as set')
  t.notMatch(r.stdout, /^ {2}OIDC_(ISSUER|CLIENT_ID|CLIENT_SECRET|USERNAME_CLAIM|BUTTON_TEXT)\b/m, 'no unprefixed issuer or client, nor shared defaults that are not set')
  t.notMatch(r.stdout, /unknown variables/, 'every provider variable is known')
  const lines = r.stdout.split('\n').map((l) => l.trim().split('=')[0]!)
  t.ok(lines.indexOf('OIDC_CORP_ISSUER') < lines.indexOf('OIDC_PARTNER_ISSUER'), 'providers in OIDC_PROVIDERS order')
  t.equal(lines.filter((l) => l.startsWith('OIDC_CORP_')).length, PROVIDER_SETTINGS.length, 'every setting of a provider')

  t.same(settings.find((s) => s.name === 'OIDC_PARTNER_ALLOW_SELF_REGISTER'), { name: 'OIDC_PARTNER_ALLOW_SELF_REGISTER', value: 'true', source: 'default' })
  t.same(settings.find((s) => s.name === 'OIDC_ISSUER'), { name: 'OIDC_ISSUER', source: 'default' }, 'unused with OIDC_PROVIDERS')

  // The single provider: its unprefixed lines as always, no provider-named ones.
  const single = await cli(['config', 'check'], { cwd, env: { AUTH_METHOD: 'both', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'tt', OIDC_CLIENT_SECRET: corpSecret, OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' } })
  t.equal(single.code, 0, single.stderr)
  t.match(single.stdout, /^ {2}OIDC_ISSUER=https:\/\/idp\.example\.com\/ +# environment$/m)
  t.match(single.stdout, /^ {2}OIDC_CLIENT_SECRET=\[secret, 30 characters\] +# environment$/m)
  t.match(single.stdout, /^ {2}OIDC_BUTTON_TEXT="Sign in with SSO" +# default$/m)
  t.notMatch(single.stdout, /OIDC_PROVIDERS|OIDC_SSO_/)
})

t.test('config check refuses exactly what the server refuses, with the same message, exit 2', async (t) => {
  const cases: Array<Record<string, string>> = [
    { NODE_ENV: 'production' },
    { PORT: 'eighty', TRUST_PROXY: '1', DATABASE_URL: 'mysql://x' },
    { SECRET_KEY: strongKey, HEADER_SIGNING_SECRET: strongKey },
    { AUTH_METHOD: 'oidc', OIDC_ISSUER: 'http://idp.example.com', SECRET_KEY_FILE: 'missing' }
  ]
  for (const env of cases) {
    const cwd = dir()
    const [check, server] = await Promise.all([
      cli(['config', 'check'], { cwd, env }),
      node(MAIN, [], { cwd, env: { ...env, HOST: '127.0.0.1' } })
    ])
    const label = JSON.stringify(env)
    t.equal(check.code, 2, label)
    t.equal(server.code, 2, `the server refuses too: ${label}`)
    const body = (text: string): string => text.split('\n').slice(1).join('\n')
    t.match(check.stderr, /^authgate: the server would refuse to start\.\nInvalid configuration:\n/)
    t.equal(body(check.stderr), body(server.stderr), `the server's message: ${label}`)
    t.equal(check.stdout, '')
  }
  const json = await cli(['config', 'check', '--json'], { env: { PORT: 'x' } })
  t.equal(json.code, 2)
  t.same((JSON.parse(json.stdout) as { problems: Array<{ name: string }> }).problems.map((p) => p.name), ['PORT'])
})

t.test('secrets generate: fresh lines that the server accepts', async (t) => {
  const a = await cli(['secrets', 'generate'])
  const b = await cli(['secrets', 'generate'])
  t.equal(a.code, 0, a.stderr)
  const lines = a.stdout.trim().split('\n')
  t.same(lines.map((l) => l.split('=', 1)[0]), ['SECRET_KEY', 'HEADER_SIGNING_SECRET'])
  const first = parseEnv(a.stdout)
  const second = parseEnv(b.stdout)
  t.ok(first.SECRET_KEY!.length >= 64, 'as long as openssl rand -base64 48')
  t.not(first.SECRET_KEY, first.HEADER_SIGNING_SECRET, 'two different secrets (the upstream holds one)')
  t.not(first.SECRET_KEY, second.SECRET_KEY, 'fresh on every run')
  t.match(first.SECRET_KEY, /^[A-Za-z0-9_-]+$/, 'no character that needs quoting')

  // Appended to a production .env, the server's own check passes (signing key included).
  const cwd = dir()
  const withKey = await cli(['secrets', 'generate', '--jwt-key'])
  t.equal(withKey.code, 0)
  t.match(withKey.stdout, /^IDENTITY_JWT_KEY=-----BEGIN PRIVATE KEY-----\\n/m)
  writeFileSync(join(cwd, '.env'), 'NODE_ENV=production\nLOCAL_AUTH=password\nUPSTREAM_URL=http://app:5000\nIDENTITY_JWT=true\nPUBLIC_URL=https://tt.example.com\n' + withKey.stdout)
  const check = await cli(['config', 'check'], { cwd })
  t.equal(check.code, 0, check.stderr)
  t.match(check.stdout, /SECRET_KEY=\[secret, 64 characters\] +# \.env/)
  t.match(check.stdout, /IDENTITY_JWT_KEY=\[secret, EC P-256 private key\] +# \.env/)
})

t.test('a command that only reads never creates or migrates a database', async (t) => {
  const cwd = dir()
  const typo = join(cwd, 'dta', 'authgate.db')
  const missing = await cli(['users', 'list'], { cwd, env: { DATABASE_URL: `sqlite:${typo}` } })
  t.equal(missing.code, 2)
  t.match(missing.stderr, `no database at ${typo}`)
  t.match(missing.stderr, /check DATABASE_URL, or create the database with: authgate migrate/)
  t.notOk(existsSync(join(cwd, 'dta')), 'neither the file nor its directory was created')
  const byDefault = await cli(['users', 'list'], { cwd })
  t.equal(byDefault.code, 2, 'the default ./data/authgate.db is not created either')
  t.same(readdirSync(cwd), [])

  // An SQLite file that is not an authgate database (a wrong path to another application's).
  const other = join(cwd, 'other.db')
  const sqlite = new SQLite(other)
  sqlite.exec('create table notes (id integer primary key)')
  sqlite.close()
  const before = statSync(other)
  const foreign = await cli(['users', 'list'], { cwd, env: { DATABASE_URL: `sqlite:${other}` } })
  t.equal(foreign.code, 2)
  t.match(foreign.stderr, /has no authgate tables; check DATABASE_URL, or create them with: authgate migrate/)
  const after = new SQLite(other, { readonly: true })
  t.same(after.prepare('select name from sqlite_master where type = \'table\'').all(), [{ name: 'notes' }], 'no migration table added')
  after.close()
  t.equal(statSync(other).size, before.size)

  // A writing command does migrate; then the reading one reads.
  const db = `sqlite:${join(cwd, 'data', 'gate.db')}`
  t.equal((await cli(['users', 'add', 'alice'], { cwd, env: { DATABASE_URL: db } })).code, 0)
  const list = await cli(['users', 'list'], { cwd, env: { DATABASE_URL: db } })
  t.equal(list.code, 0, list.stderr)
  t.equal(list.stdout.trim(), 'alice')
})

t.test('bad arguments and a bad DATABASE_URL are refused before any database is touched', async (t) => {
  const cwd = dir()
  const url = `sqlite:${join(cwd, 'db', 'x.db')}`
  for (const args of [['users', 'add', 'bad name'], ['users', 'set-admin', 'alice', 'maybe'], ['sessions', 'revoke']]) {
    const r = await cli(args, { cwd, env: { DATABASE_URL: url } })
    t.equal(r.code, 2, args.join(' '))
  }
  t.same(readdirSync(cwd), [], 'nothing created')

  const server = await node(MAIN, [], { cwd, env: { DATABASE_URL: 'mysql://db/x', HOST: '127.0.0.1' } })
  const serverLine = server.stderr.split('\n').find((l) => l.includes('DATABASE_URL'))!.replace(/^\s*- /, '')
  for (const args of [['users', 'list'], ['users', 'add', 'alice'], ['migrate']]) {
    const r = await cli(args, { cwd, env: { DATABASE_URL: 'mysql://db/x' } })
    t.equal(r.code, 2, args.join(' '))
    t.equal(r.stderr.trim(), `authgate: ${serverLine}`, 'the server\'s own DATABASE_URL check and message')
  }
  t.same(readdirSync(cwd), [])

  // DATABASE_URL_FILE, as the server reads it.
  writeFileSync(join(cwd, 'db-url'), `sqlite:${join(cwd, 'from-file.db')}\n`)
  const viaFile = await cli(['migrate'], { cwd, env: { DATABASE_URL_FILE: 'db-url' } })
  t.equal(viaFile.code, 0, viaFile.stderr)
  t.ok(existsSync(join(cwd, 'from-file.db')))
})

if (TEST_DATABASE_URL !== undefined) {
  t.test('PostgreSQL: users list on an empty schema creates nothing there', async (t) => {
    const schema = await createPostgresSchema()
    t.teardown(schema.drop)
    const url = `${schema.url}${schema.url.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema.schema}`
    const list = await cli(['users', 'list'], { env: { DATABASE_URL: url } })
    t.equal(list.code, 2)
    t.match(list.stderr, /has no authgate tables/)
    const client = new pg.Client({ connectionString: schema.url })
    await client.connect()
    t.teardown(async () => { await client.end() })
    const tables = async (): Promise<number> => (await client.query('select count(*)::int as n from information_schema.tables where table_schema = $1', [schema.schema])).rows[0].n as number
    t.equal(await tables(), 0, 'no table created, not even the migration table')
    t.equal((await cli(['migrate'], { env: { DATABASE_URL: url } })).code, 0)
    t.ok(await tables() > 0)
    const after = await cli(['users', 'list'], { env: { DATABASE_URL: url } })
    t.equal(after.code, 0, after.stderr)
    t.equal(after.stdout.trim(), 'no users')
  })
} else if (process.env.CI !== undefined) {
  t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL CLI test runs')
} else {
  t.comment('TEST_DATABASE_URL is not set: the PostgreSQL read-only CLI test did not run')
}
