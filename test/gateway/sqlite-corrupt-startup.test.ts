// A damaged SQLite file at startup, through the real entry point (src/main.ts as `npm start` runs it):
// garbage, a truncated database, a file that is not a database at all, a database with a garbled
// page. Each stops the gateway with a message naming DATABASE_URL and the file, exit code 1, and not
// a byte written: the file is as it was, and no journal is left beside it. A sound file starts.
import t from 'tap'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { HEADER_SIGNING_SECRET, SECRET_KEY } from '../support/gateway.js'
import { nodeArgs } from '../support/compiled.js'

const MAIN = resolve('src/main.ts')

interface Run { code: number, output: string }

/** Start the gateway on `file`; resolves when it exits, or once it listens (then it is stopped: code 0). */
async function start (cwd: string, databaseUrl: string): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: databaseUrl, SECRET_KEY, HEADER_SIGNING_SECRET, UPSTREAM_URL: 'http://127.0.0.1:9', LOG_FORMAT: 'json' }
  const child = spawn(process.execPath, await nodeArgs(MAIN), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d) => { output += String(d); if (/authgate listening on/.test(output)) child.kill('SIGTERM') })
  child.stderr.on('data', (d) => { output += String(d) })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => { resolve(c ?? -1) }))
  clearTimeout(timer)
  return { code, output }
}

/** A real gateway database with a user in it, closed cleanly: what a stopped gateway leaves. */
async function realDatabase (file: string): Promise<Buffer> {
  const db = openDatabase(`sqlite:${file}`)
  await migrateToLatest(db)
  const users = new UserRepository(db)
  for (let i = 0; i < 50; i++) await users.create({ username: `user${i}`, isAdmin: i === 0 })
  await db.close()
  return readFileSync(file)
}

const dir = mkdtempSync(join(tmpdir(), 'authgate-corrupt-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const sound = await realDatabase(join(dir, 'sound.db'))
t.ok(sound.length > 8 * 4096, `a database of several pages (${sound.length} bytes)`)

const garbled = Buffer.from(sound)
// The middle of the third page: one table's b-tree page, its header and cells overwritten.
garbled.fill(0xab, 2 * 4096, 2 * 4096 + 512)

const damaged: Record<string, { bytes: Buffer, says: RegExp }> = {
  'random bytes': { bytes: randomBytes(16 * 1024), says: /file is not a database \(SQLITE_NOTADB\)/ },
  'a text file': { bytes: Buffer.from('DATABASE_URL=postgres://example\n'.repeat(100)), says: /file is not a database \(SQLITE_NOTADB\)/ },
  'a truncated database (half of it)': { bytes: sound.subarray(0, Math.floor(sound.length / 2)), says: /malformed \(SQLITE_CORRUPT|corrupt/ },
  'a database cut inside its second page': { bytes: sound.subarray(0, 4096 + 1000), says: /malformed \(SQLITE_CORRUPT|corrupt/ },
  'a database with a garbled page': { bytes: garbled, says: /malformed \(SQLITE_CORRUPT|corrupt \(quick_check/ }
}

for (const [name, { bytes, says }] of Object.entries(damaged)) {
  t.test(`${name}: a clear error, exit 1, the file untouched`, async (t) => {
    const cwd = mkdtempSync(join(dir, 'case-'))
    const file = join(cwd, 'data', 'authgate.db')
    mkdirSync(join(cwd, 'data'))
    writeFileSync(file, bytes)
    const before = readdirSync(join(cwd, 'data'))
    const { code, output } = await start(cwd, 'sqlite:./data/authgate.db')
    t.equal(code, 1, 'exit code 1')
    t.match(output, /authgate: cannot start: DATABASE_URL \(sqlite:\.\/data\/authgate\.db\): /, 'names DATABASE_URL as it was given')
    t.match(output, `${file} is not a usable SQLite database`, 'and the file, in full')
    t.match(output, says, 'with SQLite\'s words for what is wrong')
    t.match(output, /Nothing was written to it\. Restore it from a backup, or move it away/, 'and what to do')
    t.notMatch(output, /\bat \S+ \(|node_modules/, 'no stack trace')
    t.notMatch(output, /authgate listening/, 'never listened')
    t.ok(readFileSync(file).equals(bytes), 'the file is byte for byte what it was')
    t.same(readdirSync(join(cwd, 'data')), before, 'and nothing was left beside it (no -wal, no -shm)')
  })
}

t.test('the same database, sound: the gateway starts on it', async (t) => {
  const cwd = mkdtempSync(join(dir, 'case-'))
  writeFileSync(join(cwd, 'authgate.db'), sound)
  const { code, output } = await start(cwd, 'sqlite:./authgate.db')
  t.match(output, /authgate listening on/, 'listening')
  t.equal(code, 0, 'stopped cleanly')
})

t.test('an empty file is a new database to SQLite: the gateway starts and creates its tables in it', async (t) => {
  const cwd = mkdtempSync(join(dir, 'case-'))
  writeFileSync(join(cwd, 'authgate.db'), '')
  const { code, output } = await start(cwd, 'sqlite:./authgate.db')
  t.match(output, /authgate listening on/, 'listening')
  t.equal(code, 0)
})
