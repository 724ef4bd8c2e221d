// `npm run test:postgres`: the tests whose subject is what the gateway keeps in its database, run again
// with TEST_DATABASE=postgres, so each of their gateways works on a fresh PostgreSQL schema of
// TEST_DATABASE_URL (test/support/gateway.ts) instead of a SQLite file. CI runs it after `npm test`.
//
// The rule: a file is in this pass when it starts a gateway through test/support (startGateway,
// startSsoGateway) or shares a test database (createTestDatabase), unless NOT_ABOUT_THE_DATABASE
// below says why the dialect does not matter to it: the proxy and what reaches the upstream (the
// request path never waits on the database: sessions are checked in memory, src/session/
// revocations.ts), an IdP refused or limited before anything is stored, what is counted or logged
// about events the files kept here store, or a database of the file's own that TEST_DATABASE does
// not change. What stays: sign-in (local and SSO: accounts created, linked, looked up, throttled),
// sessions and their end (logout, back- and front-channel logout, revocation, the CLI), audit. A new
// file that starts a gateway is in this pass until it is listed there. test/db needs no second
// pass: each of its files runs on both databases already. The browser, TimeTracker, interop, deploy
// and docs suites are `npm test`'s. Files given as arguments replace the selection. Prints the files
// and the time taken.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const EXCLUDED = ['test/browser/', 'test/timetracker/', 'test/interop/', 'test/deploy/', 'test/docs/', 'test/db/']
/** Files (or folders) that start gateways but whose subject is not the database, and why. */
const NOT_ABOUT_THE_DATABASE: Record<string, string> = {
  'test/upstream/': 'proxying, streams, WebSockets, forward-auth, identity headers and upstream faults',
  'test/gateway/proxy.test.ts': 'proxying',
  'test/gateway/request-id.test.ts': 'a header',
  'test/gateway/logs.test.ts': 'access log lines',
  'test/gateway/slow-clients.test.ts': 'client timeouts',
  'test/gateway/fuzz.test.ts': 'malformed HTTP',
  'test/gateway/access-rules.test.ts': 'ACCESS_RULES on the request path',
  'test/oidc/access-rules-sso.test.ts': 'ACCESS_RULES on the IdP\'s claims',
  'test/gateway/logout-csrf.test.ts': 'the CSRF check, before anything is ended',
  'test/pages/': 'the gateway\'s pages',
  'test/gateway/healthcheck.test.ts': 'the probe, which never opens the database',
  'test/gateway/metrics.test.ts': 'what is counted',
  'test/oidc/observability.test.ts': 'what is counted and logged',
  'test/oidc/hostile.test.ts': 'a misbehaving IdP, refused before anything is stored',
  'test/oidc/idp-faults.test.ts': 'IdP timeouts, refused before anything is stored',
  'test/oidc/unavailable.test.ts': 'an IdP down at start',
  'test/oidc/rate-limit.test.ts': 'OIDC_RATE_LIMIT, kept in memory',
  'test/gateway/database-outage.test.ts': 'on PostgreSQL in either pass (its own schema)',
  'test/gateway/sqlite-faults.test.ts': 'on SQLite in either pass (its own file)',
  'test/oidc/revalidation-postgres.test.ts': 'on PostgreSQL in either pass'
}
const STARTS_A_GATEWAY = /\b(startGateway|startSsoGateway|createTestDatabase)\(/

function testFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return testFiles(path)
    return entry.name.endsWith('.test.ts') ? [relative(root, path)] : []
  })
}

if (process.env.TEST_DATABASE_URL === undefined || process.env.TEST_DATABASE_URL === '') {
  process.stderr.write('test:postgres: set TEST_DATABASE_URL, e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test\n')
  process.exit(2)
}

// A renamed or removed file would otherwise leave its entry matching nothing, unnoticed.
const stale = Object.keys(NOT_ABOUT_THE_DATABASE).filter((f) => !existsSync(join(root, f)))
if (stale.length > 0) {
  process.stderr.write(`test:postgres: NOT_ABOUT_THE_DATABASE names what does not exist: ${stale.join(', ')}\n`)
  process.exit(2)
}

const given = process.argv.slice(2)
const skipped = [...EXCLUDED, ...Object.keys(NOT_ABOUT_THE_DATABASE)]
const files = given.length > 0
  ? given
  : testFiles(join(root, 'test')).filter((f) => !skipped.some((d) => f.startsWith(d)) && STARTS_A_GATEWAY.test(readFileSync(join(root, f), 'utf8'))).sort()
process.stdout.write(`test:postgres: ${files.length} files with TEST_DATABASE=postgres\n`)

const started = Date.now()
const tap = spawn(join(root, 'node_modules', '.bin', 'tap'), ['--disable-coverage', ...files], {
  cwd: root,
  env: { ...process.env, TEST_DATABASE: 'postgres' },
  stdio: 'inherit'
})
tap.on('exit', (code, signal) => {
  process.stdout.write(`test:postgres: ${files.length} files in ${Math.round((Date.now() - started) / 1000)} s\n`)
  process.exit(code ?? (signal !== null ? 1 : 0))
})
