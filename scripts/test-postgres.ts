// `npm run test:postgres`: the tests whose gateways keep users and sessions in the database, run again
// with TEST_DATABASE=postgres, so each of those gateways works on a fresh PostgreSQL schema of
// TEST_DATABASE_URL (test/support/gateway.ts) instead of a SQLite file. CI runs it after `npm test`.
//
// The files: every test that starts a gateway through test/support (startGateway, startSsoGateway)
// or shares a test database (createTestDatabase), except the browser, TimeTracker, interop, deploy
// and docs suites, which `npm test` runs and whose subject is not the database. test/db needs no
// second pass: each of its files runs on both databases already (as does the SSO re-validation). Files given as arguments replace
// the selection. Prints the files and the time taken.
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const EXCLUDED = ['test/browser/', 'test/timetracker/', 'test/interop/', 'test/deploy/', 'test/docs/', 'test/db/',
  // Its gateways are on PostgreSQL in either pass.
  'test/oidc/revalidation-postgres.test.ts']
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

const given = process.argv.slice(2)
const files = given.length > 0
  ? given
  : testFiles(join(root, 'test')).filter((f) => !EXCLUDED.some((d) => f.startsWith(d)) && STARTS_A_GATEWAY.test(readFileSync(join(root, f), 'utf8'))).sort()
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
