// What the docs say, checked against the code wherever a machine can check it: the variables listed
// (README, env.example, docs/OIDC_SETUP.md) are exactly the ones the configuration reads, with the
// defaults loadConfig applies; example ports agree; README's routes are the app's; the SSO error
// table matches the pages; package-lock.json's root matches package.json; DEPLOY.md's systemd steps
// run. Each failure names the document and what to change.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { ConfigError, loadConfig, providerPrefix, type Config, type Env } from '../../src/config/index.js'
import { DESCRIBE, describeConfig, settingNames, type Setting } from '../../src/config/describe.js'
import { FAILURES, type OidcFailureCode } from '../../src/auth/oidc/errors.js'
import { PROVIDER_SETTINGS } from '../../src/config/oidc.js'
import { SIGNED_OUT_LOCATION } from '../../src/auth/logout.js'
import { startGateway } from '../support/gateway.js'
import { oidcEnv } from '../support/sso.js'
import { http } from '../support/http.js'

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const SETTINGS = new Set(settingNames())
const SECRET_FILE_FORMS = new Set([...SETTINGS].map((n) => `${n}_FILE`))
const dir = (): string => mkdtempSync(join(tmpdir(), 'authgate-docs-'))

interface Row { names: string[], cells: string[] }

/** The rows of the Markdown table whose header starts with `header`. */
function table (markdown: string, header: string): Row[] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => l.startsWith(header))
  if (start < 0) throw new Error(`no table "${header}"`)
  const rows: Row[] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    const cells = line.replace(/^\|\s*|\s*\|$/g, '').split(/\s+\|\s+/)
    rows.push({ names: [...cells[0]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!), cells })
  }
  return rows
}

/** Variables env.example shows, as `NAME=value` lines (commented out or not), with their comment. */
function envExample (): Array<{ name: string, value: string, comment: string }> {
  return read('env.example').split('\n').flatMap((line) => {
    const m = /^#?\s?([A-Z][A-Z0-9_]+)=(.*?)(\s+#.*)?$/.exec(line)
    return m === null ? [] : [{ name: m[1]!, value: m[2]!, comment: m[3] ?? '' }]
  })
}

// The effective defaults, from the same description `authgate config check` prints. Two
// configurations: the plain one, and one that turns on what is off by default (SSO, the JWT) so
// their variables have values too.
const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const plain = describe({})
const full = describe({ ...oidcEnv('https://idp.example.com', { AUTH_METHOD: 'both' }), IDENTITY_JWT: 'true', PUBLIC_URL: 'http://tt.example.com' })

function describe (env: Env): Map<string, Setting> {
  const all = { ...secrets, ...env }
  const config: Config = loadConfig(all, { cwd: dir(), dotenv: false, writeDevSecrets: false })
  return new Map(describeConfig(config, all, all).map((s) => [s.name, s]))
}

/** A variable's default as loadConfig applies it, or undefined where no configuration here shows one. */
function defaultOf (name: string): string | undefined {
  for (const settings of [plain, full]) {
    const s = settings.get(name)
    if (s !== undefined && s.source === 'default' && s.value !== undefined) return s.value
  }
  return undefined
}

t.test('config check describes every variable the configuration reads', async (t) => {
  for (const name of SETTINGS) t.ok(name in DESCRIBE, `${name}: add it to DESCRIBE in src/config/describe.ts`)
})

t.test('README\'s configuration table lists exactly the variables the configuration reads', async (t) => {
  const documented = new Set(table(read('README.md'), '| variable | default | meaning |').flatMap((r) => r.names))
  for (const name of SETTINGS) t.ok(documented.has(name), `${name} is read by src/config but missing from README.md#configuration`)
  for (const name of documented) t.ok(SETTINGS.has(name), `README.md#configuration lists ${name}, which src/config/variables.ts does not know`)
})

/** The provider ids of env.example's OIDC_PROVIDERS example, and whether a name is one of their OIDC_<ID>_* variables. */
const exampleProviders = (): { ids: string[], isProviderVariable: (name: string) => boolean } => {
  const ids = envExample().find((e) => e.name === 'OIDC_PROVIDERS')?.value.split(',') ?? []
  return { ids, isProviderVariable: (name) => ids.some((id) => name.startsWith(providerPrefix(id))) }
}

t.test('env.example shows exactly the variables the configuration reads', async (t) => {
  // Each provider's OIDC_<ID>_* are checked by loading them (below), not against the list.
  const { isProviderVariable } = exampleProviders()
  const shown = new Set(envExample().filter((e) => !isProviderVariable(e.name)).map((e) => SECRET_FILE_FORMS.has(e.name) ? e.name.slice(0, -'_FILE'.length) : e.name))
  for (const name of SETTINGS) t.ok(shown.has(name), `${name} is read by src/config but missing from env.example`)
  for (const name of shown) t.ok(SETTINGS.has(name), `env.example shows ${name}, which src/config/variables.ts does not know`)
})

/**
 * A several-providers example as the server reads it: every secret file made to exist, and the
 * configuration loaded, so that a misspelt or unknown name, or a value the server refuses, fails here.
 */
function loadProvidersExample (env: Env): Config {
  const cwd = dir()
  const files = Object.fromEntries(Object.keys(env).filter((n) => n.endsWith('_FILE')).map((n) => {
    writeFileSync(join(cwd, n), 'example-secret\n')
    return [n, n]
  }))
  return loadConfig({ ...secrets, ...env, ...files }, { cwd, dotenv: false })
}

t.test('env.example\'s several-providers block is a configuration the server accepts, every name known', async (t) => {
  const { ids, isProviderVariable } = exampleProviders()
  t.ok(ids.length >= 2, `OIDC_PROVIDERS=${ids.join(',')}`)
  const lines = envExample().filter((e) => e.name === 'OIDC_PROVIDERS' || e.name === 'OIDC_REDIRECT_URI' || isProviderVariable(e.name))
  const c = loadProvidersExample({ AUTH_METHOD: 'both', ...parseEnv(lines.map((e) => `${e.name}=${e.value}`).join('\n')) })
  t.same(c.oidcProviders.map((p) => p.id), ids)
  t.same(c.unknownVariables, [], 'no name the server does not read')
  t.ok(lines.filter((e) => isProviderVariable(e.name)).length >= 10, `${lines.length} lines`)
})

t.test('docs/OIDC_SETUP.md\'s several-providers example is a configuration the server accepts', async (t) => {
  const doc = read('docs/OIDC_SETUP.md')
  const section = doc.slice(doc.indexOf('\n## Several identity providers\n'), doc.indexOf('\n## What is checked\n'))
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1]
  t.ok(block, 'the section has an example')
  const env = parseEnv(block ?? '')
  const c = loadProvidersExample(env)
  t.same(c.oidcProviders.map((p) => p.id), env.OIDC_PROVIDERS?.split(','))
  t.same(c.unknownVariables, [], 'no name the server does not read')
  t.same(c.adminUsernames, [], 'the example sets ADMIN_USERNAMES= as its text advises')
  const partner = c.oidcProviders.find((p) => p.id === 'partner')
  t.equal(partner?.allowSelfRegister, false)
  t.equal(partner?.adminGroup, undefined, 'nobody is an admin through partner')
  t.same(partner?.adminEmails, [])
})

t.test('docs/PROTOCOL.md and docs/OIDC_SETUP.md name every setting a provider of OIDC_PROVIDERS may set for itself', async (t) => {
  const section = (path: string, heading: string): string => {
    const doc = read(path)
    const start = doc.indexOf(`\n## ${heading}\n`)
    const end = doc.indexOf('\n## ', start + 1)
    return doc.slice(start, end < 0 ? undefined : end)
  }
  const protocol = section('docs/PROTOCOL.md', 'Several identity providers')
  const setup = section('docs/OIDC_SETUP.md', 'Several identity providers')
  for (const setting of PROVIDER_SETTINGS) {
    // PROTOCOL.md lists them bare (`TIMEOUT`) or whole; OIDC_SETUP.md as `_TIMEOUT` or `OIDC_<ID>_TIMEOUT`.
    t.match(protocol, new RegExp(`\`(OIDC_<ID>_)?${setting}\``), `docs/PROTOCOL.md#several-identity-providers names ${setting}`)
    t.match(setup, new RegExp(`\`(OIDC_<ID>)?_${setting}\``), `docs/OIDC_SETUP.md#several-identity-providers names OIDC_<ID>_${setting}`)
  }
})

t.test('docs/OIDC_SETUP.md lists every SSO variable, and only real ones', async (t) => {
  const documented = new Set(table(read('docs/OIDC_SETUP.md'), '| variable | default | meaning |').flatMap((r) => r.names))
  for (const name of documented) t.ok(SETTINGS.has(name), `docs/OIDC_SETUP.md lists ${name}, which src/config/variables.ts does not know`)
  for (const name of [...SETTINGS].filter((n) => n.startsWith('OIDC_'))) t.ok(documented.has(name), `${name} missing from docs/OIDC_SETUP.md#variables`)
})

t.test('documented defaults are the defaults loadConfig applies', async (t) => {
  t.equal(defaultOf('PORT'), '8080', 'the check itself reads defaults')
  let checked = 0
  for (const path of ['README.md', 'docs/OIDC_SETUP.md', 'docs/LOGIN_PAGE.md']) {
    const header = path === 'docs/LOGIN_PAGE.md' ? '| variable |' : '| variable | default | meaning |'
    for (const row of table(read(path), header)) {
      // The leading `value` / `value` of the default column (prose after it, e.g. "in development", is not checked).
      const lead = /^((?:`[^`]*`(?: \/ |$| ))+)/.exec(row.cells[1] ?? '')?.[1]
      if (lead === undefined) continue
      const values = [...lead.matchAll(/`([^`]*)`/g)].map((m) => m[1]!)
      row.names.forEach((name, i) => {
        const documented = values[i]
        const actual = defaultOf(name)
        if (documented === undefined || actual === undefined) return
        checked++
        t.equal(documented, actual, `${path}: ${name}'s default`)
      })
    }
  }
  for (const { name, value, comment } of envExample()) {
    const actual = defaultOf(name)
    // A value shown without a comment saying otherwise is the default (env.example says so at the top).
    if (actual === undefined || actual === '' || value === '' || /default:|e\.g\.|preset/i.test(comment)) continue
    checked++
    t.equal(value, actual, `env.example: ${name}=${value} is shown as the default`)
  }
  t.ok(checked > 40, `${checked} defaults compared`)
})

t.test('example ports agree: the gateway on 8080, the application on 5000', async (t) => {
  const files = ['README.md', 'env.example', 'docs/UPSTREAM.md', 'docs/OIDC_SETUP.md', 'docs/TIMETRACKER.md', 'docs/DEPLOY.md', 'docs/LOGIN_PAGE.md', 'config/authgate.service', 'src/server-args.ts']
  let examples = 0
  for (const path of files) {
    // On one host (loopback), the application is TimeTracker's development port; a container
    // name (http://timetracker:8080, its image's port) is another matter and not compared.
    for (const m of read(path).matchAll(/(?:UPSTREAM_URL=|audience: '|upstream's origin, e\.g\. `?)http:\/\/(?:127\.0\.0\.1|localhost):(\d+)/g)) {
      examples++
      t.equal(m[1], '5000', `${path}: ${m[0]}`)
    }
  }
  t.ok(examples >= 6, `${examples} examples`)
  try {
    loadConfig({ NODE_ENV: 'production' }, { cwd: dir(), dotenv: false })
    t.fail('production without UPSTREAM_URL starts')
  } catch (err) {
    const upstream = (err as ConfigError).problems.find((p) => p.name === 'UPSTREAM_URL')!.message
    t.match(upstream, /e\.g\. http:\/\/127\.0\.0\.1:5000$/, 'the error hint gives the same example, not the gateway\'s own port')
  }
  t.equal(defaultOf('PORT'), /<http:\/\/localhost:(\d+)>/.exec(read('README.md'))![1], 'README\'s quick start opens the default port')
  // The busy-port hints of `npm start` and `npm run demo` suggest the same free port.
  const hints = ['src/main.ts', 'scripts/demo.ts'].map((path) => /PORT=(\d+) npm/.exec(read(path))?.[1])
  t.same(hints, ['8090', '8090'])
})

t.test('README\'s "Routes the gateway owns" are the app\'s own routes, all of them', async (t) => {
  const gw = await startGateway({ ...oidcEnv('http://127.0.0.1:9', { AUTH_METHOD: 'both' }), IDENTITY_JWT: 'true', PUBLIC_URL: 'http://127.0.0.1:8080' })
  t.teardown(async () => { await gw.close() })
  const documented = table(read('README.md'), '| route |').flatMap((row) => [...row.cells[0]!.matchAll(/`(?:(GET|POST) )?(\/[^`\s]*)`/g)].map((m) => ({ method: m[1] ?? 'GET', url: m[2]! })))
  t.ok(documented.length >= 10, `${documented.length} routes documented`)
  for (const route of documented) t.ok(gw.app.hasRoute(route as { method: 'GET' | 'POST', url: string }), `README.md: ${route.method} ${route.url} is a route of the app`)
  // The other direction: every route of the gateway's own (not the proxy's catch-all) is documented.
  const tree = gw.app.printRoutes({ commonPrefix: false })
  const internal = new Set(['/', '/*', '/_authgate/invalid-request-target'])
  // printRoutes nests /login/oidc under /login: rebuild the full paths from the indentation.
  const full: string[] = []
  const stack: Array<{ depth: number, path: string }> = []
  for (const line of tree.split('\n')) {
    const m = /^([│\s]*)[├└]── (\S+)/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= depth) stack.pop()
    const parent = stack[stack.length - 1]?.path ?? ''
    const path = (parent === '/' ? '' : parent) + (m[2]!.startsWith('/') ? '' : '/') + m[2]!
    stack.push({ depth, path })
    full.push(path.replace(/^\/\//, '/'))
  }
  t.ok(full.includes('/login/oidc'), `the route tree was read: ${full.join(' ')}`)
  const documentedPaths = new Set(documented.map((r) => r.url))
  for (const path of full) {
    if (internal.has(path) || path.startsWith('/_authgate/static/')) continue
    t.ok(documentedPaths.has(path), `${path} is a route of the gateway but not in README.md's "Routes the gateway owns"`)
  }
})

t.test('docs/OIDC_SETUP.md\'s SSO error table matches the pages', async (t) => {
  const rows = [...read('docs/OIDC_SETUP.md').matchAll(/^\| `([a-z-]+)` \((.*?)\) \|/gm)]
  const codes = new Set(rows.map((m) => m[1]!))
  for (const code of Object.keys(FAILURES)) t.ok(codes.has(code), `${code} is missing from docs/OIDC_SETUP.md#troubleshooting`)
  for (const [, code, said] of rows) {
    const page = FAILURES[code as OidcFailureCode]
    if (page === undefined) { t.fail(`docs/OIDC_SETUP.md explains ${code!}, which the code does not have`); continue }
    const plainPage = /^"(.*)", (\d{3})$/.exec(said!)
    if (plainPage !== null) {
      t.same([plainPage[1], Number(plainPage[2])], [page.title, page.status], `${code!}: the page's title and status`)
    } else {
      t.equal(code, 'provider-unavailable', `${code!}: "(title, status)" expected`)
    }
  }
  // The one failure answered with the login page itself: what the row quotes is on that page.
  const row = rows.find((m) => m[1] === 'provider-unavailable')![2]!
  const [, status, text] = /^the login page, (\d{3}): "(.*)"$/.exec(row) ?? []
  t.ok(text, `provider-unavailable: ${row}`)
  const gw = await startGateway(oidcEnv('http://127.0.0.1:9', { AUTH_METHOD: 'both' }))
  t.teardown(async () => { await gw.close() })
  const answer = await http(`${gw.url}/login/oidc`, { headers: { accept: 'text/html' } })
  t.equal(answer.status, Number(status))
  t.match(answer.body, text!, 'the text the docs quote')
  t.match(answer.body, /id="sso"/, 'on the login page, whose SSO button tries again')
  t.notMatch(answer.body, /Sign-in provider unavailable/, 'not a separate page')
  t.match(read('docs/OIDC_SETUP.md'), /^- `\/login\/oidc` tries discovery once more and, if the IdP is still down, answers 503 with the login\n {2}page itself/m,
    'the "When the IdP is down" section says the same')
})

t.test('every OIDC_POST_LOGOUT_REDIRECT_URI example lands on the signed-out login page', async (t) => {
  let examples = 0
  for (const path of ['README.md', 'env.example', 'docs/OIDC_SETUP.md', 'docs/LOGIN_PAGE.md', 'docs/DEPLOY.md', 'docs/TIMETRACKER.md', 'docs/DEMO.md']) {
    const pattern = /(?:OIDC_POST_LOGOUT_REDIRECT_URI=(?:\s+# e\.g\. )?|Post-logout redirect URI \(optional\): for example `|point\s+`OIDC_POST_LOGOUT_REDIRECT_URI` at `)(https?:\/\/(?:<[^>]+>|[^\s`<])+)/g
    for (const m of read(path).matchAll(pattern)) {
      examples++
      const url = new URL(m[1]!.replace(/<[^>]+>/g, 'host.example'))
      t.equal(url.pathname + url.search, SIGNED_OUT_LOCATION, `${path}: ${m[1]!}`)
    }
  }
  t.ok(examples >= 4, `${examples} examples`)
})

t.test('README\'s req.authgate shape has every field of the verifier\'s RequestIdentity', async (t) => {
  const source = read('packages/verify/src/middleware.ts')
  const body = /export interface RequestIdentity \{([\s\S]*?)\n\}/.exec(source)![1]!
  const fields = [...body.matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]!)
  t.ok(fields.length >= 7, fields.join(', '))
  // The comment lines from `// req.authgate =` on.
  const shape = /^\/\/ req\.authgate = .*\n(?:\/\/.*\n)*/m.exec(read('README.md'))?.[0] ?? ''
  for (const field of fields) t.match(shape, new RegExp(`\\b${field}\\b`), `README.md's req.authgate comment names ${field}`)
})

t.test('package-lock.json\'s root is package.json (npm install leaves the tree clean)', async (t) => {
  const pkg = JSON.parse(read('package.json')) as Record<string, unknown>
  const lock = JSON.parse(read('package-lock.json')) as { name: string, version: string, packages: Record<string, Record<string, unknown>> }
  const rootEntry = lock.packages['']!
  t.equal(lock.name, pkg.name)
  t.equal(lock.version, pkg.version)
  for (const field of ['bin', 'engines', 'dependencies', 'devDependencies', 'license']) {
    t.same(rootEntry[field], pkg[field], `package-lock.json packages[""].${field}: run npm install --package-lock-only`)
  }
})

t.test('docs/DEPLOY.md\'s systemd steps: the secrets and the check run as written', async (t) => {
  const deploy = read('docs/DEPLOY.md')
  const section = deploy.slice(deploy.indexOf('### systemd'), deploy.indexOf('### Docker'))
  const commands = (/```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '').split('\n').filter((l) => l.startsWith('sudo'))
  const step = (pattern: RegExp): string => {
    const line = commands.find((l) => pattern.test(l))
    if (line === undefined) throw new Error(`no step matching ${String(pattern)} in docs/DEPLOY.md#systemd`)
    return line
  }
  // The unit needs these: say how to make each of them.
  for (const pattern of [/useradd --system .* authgate$/, /install .*env\.example \/etc\/authgate\/authgate\.env/, /secret_key header_signing_secret/, /config check/, /authgate\.service \/etc\/systemd\/system/, /users add/]) {
    t.ok(commands.some((l) => pattern.test(l)), `a step for ${String(pattern)}`)
  }
  const unit = read('config/authgate.service')
  for (const path of ['/etc/authgate/authgate.env', '/etc/authgate/secret_key', '/etc/authgate/header_signing_secret']) t.match(unit, path, `the unit reads ${path}`)

  // Run the secret and check steps in a directory standing in for /etc/authgate, without sudo.
  const etc = dir()
  const local = (line: string): string => line.replace(/^sudo (-u \S+ )?/, '').replaceAll('/etc/authgate', etc).replaceAll('node /opt/authgate/dist/src/cli/bin.js', `'${process.execPath}' --import=${import.meta.resolve('tsx')} '${resolve('src/cli/bin.ts')}'`)
  execFileSync('sh', ['-c', local(step(/secret_key header_signing_secret/))])
  for (const name of ['secret_key', 'header_signing_secret']) {
    const file = join(etc, name)
    t.match(readFileSync(file, 'utf8'), /^[A-Za-z0-9+/=]{64}$/, `${name}: 48 random bytes, no newline`)
    t.equal(statSync(file).mode & 0o777, 0o600, `${name}: readable by its owner only`)
  }
  writeFileSync(join(etc, 'authgate.env'), 'NODE_ENV=production\nUPSTREAM_URL=http://127.0.0.1:5000\nPUBLIC_URL=https://tt.example.com\nLOCAL_AUTH=password\nDATABASE_URL=sqlite:/var/lib/authgate/authgate.db\n')
  const check = execFileSync('sh', ['-c', local(step(/config check/))], { cwd: dir(), env: { PATH: process.env.PATH ?? '' } }).toString()
  t.match(check, /Configuration valid \(production\)/)
  t.match(check, new RegExp(`SECRET_KEY=\\[secret, 64 characters\\] +# SECRET_KEY_FILE=${etc.replace(/[/.]/g, '\\$&')}/secret_key`))
})
