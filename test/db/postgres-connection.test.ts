// PostgreSQL as operators run it, against the real server (TEST_DATABASE_URL; required in CI): the
// pool's size and the wait for a free connection (DATABASE_POOL_SIZE, DATABASE_CONNECT_TIMEOUT), a
// server that never answers, the statement timeout (DATABASE_STATEMENT_TIMEOUT) and migrations that
// are exempt from it, and TLS (sslmode, sslrootcert, DATABASE_CA_FILE) through a TLS front on
// loopback (test/support/tls-postgres.ts), since the test server itself may have ssl off.
import t from 'tap'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { sql } from 'kysely'
import { postgresSettingsFor, type PostgresSettings } from '../../src/config/database.js'
import { describeDatabaseError, openDatabase, type Db } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { migrations } from '../../migrations/index.js'
import { createPostgresSchema, TEST_DATABASE_URL } from '../support/gateway.js'
import { createTestPki, startTlsFront, type TlsFront } from '../support/tls-postgres.js'
import { runNode } from '../support/process.js'
import { http } from '../support/http.js'
import { nodeArgs } from '../support/compiled.js'

const MAIN = resolve('src/main.ts')
/** Kysely's migration lock on PostgreSQL (pg_advisory_lock), as its PostgresAdapter names it. */
const KYSELY_MIGRATION_LOCK = '3853314791062309107'
const LOCK = 715_001 + Math.floor(Math.random() * 1000)

if (TEST_DATABASE_URL === undefined) {
  if (process.env.CI !== undefined) t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL tests run')
  else t.comment('TEST_DATABASE_URL is not set: the PostgreSQL connection tests did not run (set it to postgres://postgres@127.0.0.1:5432/test)')
} else {
  await suite(TEST_DATABASE_URL)
}

async function suite (base: string): Promise<void> {
  const backend = new URL(base)
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  t.teardown(async () => { await admin.end() })

  /** TEST_DATABASE_URL with these query parameters, or to another port of 127.0.0.1. */
  const urlWith = (query: string, port?: number): string => {
    const u = new URL(base)
    if (port !== undefined) { u.hostname = '127.0.0.1'; u.port = String(port) }
    const url = u.toString()
    return query === '' ? url : `${url}${url.includes('?') ? '&' : '?'}${query}`
  }
  const appName = (): string => `authgate_test_${randomBytes(4).toString('hex')}`
  const open = (url: string, overrides: Partial<PostgresSettings> = {}): Db => {
    const db = openDatabase(url, { postgres: { ...postgresSettingsFor(url), ...overrides } })
    t.teardown(async () => { await db.close() })
    return db
  }
  const backends = async (app: string, waitingOnLock = false): Promise<number> => {
    const { rows } = await admin.query<{ n: string }>(
      `select count(*) as n from pg_stat_activity where application_name = $1${waitingOnLock ? ' and wait_event_type = \'Lock\'' : ''}`, [app])
    return Number(rows[0]!.n)
  }
  const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await check()) return
      await sleep(50)
    }
    throw new Error(`never happened: ${what}`)
  }
  const reason = async (promise: Promise<unknown>): Promise<Error & { code?: string }> => {
    try {
      await promise
    } catch (err) {
      return err as Error
    }
    throw new Error('it succeeded')
  }

  t.test('DATABASE_POOL_SIZE bounds the connections; DATABASE_CONNECT_TIMEOUT bounds the wait for a free one', async (t) => {
    const app = appName()
    const url = urlWith(`application_name=${app}`)
    const db = open(url, { poolSize: 2, connectTimeoutMs: 1000 })
    await admin.query('select pg_advisory_lock($1)', [LOCK])
    // Two statements hold both connections, waiting on a lock the test holds.
    const held = [1, 2].map(async () => await sql`select pg_advisory_xact_lock_shared(${LOCK})`.execute(db.kysely))
    await until('both connections wait on the lock', async () => await backends(app, true) === 2)
    const third = await reason(sql`select 1`.execute(db.kysely))
    t.match(third.message, /timeout exceeded when trying to connect/, 'a third query gets no connection, and does not wait forever')
    t.match(describeDatabaseError(third, url, { ...postgresSettingsFor(url), connectTimeoutMs: 1000 }), /did not answer within DATABASE_CONNECT_TIMEOUT \(1 s\)/)
    t.equal(await backends(app), 2, 'never more connections than DATABASE_POOL_SIZE')
    await admin.query('select pg_advisory_unlock($1)', [LOCK])
    await Promise.all(held)
    const many = await Promise.all(Array.from({ length: 8 }, async (_, i) => (await sql<{ i: number }>`select ${i}::int as i`.execute(db.kysely)).rows[0]!.i))
    t.same(many, [0, 1, 2, 3, 4, 5, 6, 7], 'more queries than connections: they queue and all succeed')
    t.ok(await backends(app) <= 2)
  })

  t.test('DATABASE_STATEMENT_TIMEOUT: the server cancels a statement that runs longer, the connection stays usable', async (t) => {
    const app = appName()
    const db = open(urlWith(`application_name=${app}`), { statementTimeoutMs: 1000, poolSize: 1 })
    t.same((await sql<{ statement_timeout: string }>`show statement_timeout`.execute(db.kysely)).rows, [{ statement_timeout: '1s' }])
    await admin.query('select pg_advisory_lock($1)', [LOCK])
    t.teardown(async () => { await admin.query('select pg_advisory_unlock_all()') })
    const stuck = await reason(sql`select pg_advisory_xact_lock(${LOCK})`.execute(db.kysely))
    t.equal(stuck.code, '57014', 'query_canceled')
    t.match(stuck.message, /statement timeout/)
    t.same((await sql<{ one: number }>`select 1 as one`.execute(db.kysely)).rows, [{ one: 1 }], 'the same (only) connection answers the next query')

    const unlimited = open(urlWith(`application_name=${app}`), { statementTimeoutMs: 0 })
    t.same((await sql<{ statement_timeout: string }>`show statement_timeout`.execute(unlimited.kysely)).rows, [{ statement_timeout: '0' }], '0: none')
  })

  t.test('migrations are exempt: they wait for another instance\'s migration lock longer than the statement timeout', async (t) => {
    const schema = await createPostgresSchema()
    t.teardown(schema.drop)
    const app = appName()
    const db = open(`${schema.schemaUrl}&application_name=${app}`, { statementTimeoutMs: 1000 })
    // Another instance migrating: it holds Kysely's migration lock.
    await admin.query(`select pg_advisory_lock(${KYSELY_MIGRATION_LOCK})`)
    let unlocked = false
    t.teardown(async () => { if (!unlocked) await admin.query(`select pg_advisory_unlock(${KYSELY_MIGRATION_LOCK})`) })
    const migrating = migrateToLatest(db)
    await until('the migration waits for the lock', async () => await backends(app, true) === 1)
    // Longer than DATABASE_STATEMENT_TIMEOUT: a wait under it would be cancelled by now.
    await sleep(2000)
    await admin.query(`select pg_advisory_unlock(${KYSELY_MIGRATION_LOCK})`)
    unlocked = true
    t.same(await migrating, Object.keys(migrations), 'then it applies them')
    t.same((await sql<{ statement_timeout: string }>`show statement_timeout`.execute(db.kysely)).rows, [{ statement_timeout: '1s' }], 'the gateway\'s own connections keep the limit')
  })

  t.test('a server that accepts the connection and never answers: DATABASE_CONNECT_TIMEOUT, at startup and after', async (t) => {
    const silent = await blackHole()
    t.teardown(silent.close)
    const url = urlWith('', silent.port)
    const db = open(url, { connectTimeoutMs: 1000 })
    const err = await reason(sql`select 1`.execute(db.kysely))
    t.match(describeDatabaseError(err, url, { ...postgresSettingsFor(url), connectTimeoutMs: 1000 }), /did not answer within DATABASE_CONNECT_TIMEOUT \(1 s\)/)

    const started = await runNode(MAIN, [], { env: gatewayEnv({ DATABASE_URL: url, DATABASE_CONNECT_TIMEOUT: '1' }), cwd: mkdtempSync(join(tmpdir(), 'authgate-pgconn-')) })
    t.equal(started.code, 1, 'the gateway does not start')
    t.match(started.stderr, new RegExp(`authgate: failed to start: the database at postgres://[^ ]*127\\.0\\.0\\.1:${silent.port}/\\S* did not answer within DATABASE_CONNECT_TIMEOUT \\(1 s\\)`))
  })

  t.test('TLS', async (t) => {
    const pki = createTestPki()
    const backendAddress = { host: backend.hostname, port: Number(backend.port === '' ? 5432 : backend.port) }
    const fronts: TlsFront[] = [await startTlsFront(backendAddress, pki.server), await startTlsFront(backendAddress, pki.wrongName)]
    t.teardown(async () => { for (const f of fronts) await f.close() })
    const [right, wrongName] = fronts as [TlsFront, TlsFront]
    const connects = async (front: TlsFront, query: string, env: { caFile?: string } = {}): Promise<{ ok: true } | { ok: false, error: Error & { code?: string }, described: string }> => {
      const url = urlWith(query, front.port)
      const settings = postgresSettingsFor(url, env)
      const db = open(url, settings)
      try {
        await sql`select 1`.execute(db.kysely)
        return { ok: true }
      } catch (err) {
        return { ok: false, error: err as Error, described: describeDatabaseError(err, url, settings) }
      }
    }

    await t.test('verify-full with the CA: connected, over TLS', async (t) => {
      const before = right.handshakes
      t.same(await connects(right, `sslmode=verify-full&sslrootcert=${pki.caFile}`), { ok: true })
      t.ok(right.handshakes > before, 'the front saw a TLS handshake')
      t.same(await connects(right, `sslrootcert=${pki.caFile}`), { ok: true }, 'a CA alone means verify-full')
      t.same(await connects(right, 'sslmode=verify-full', { caFile: pki.caFile }), { ok: true }, 'the CA from DATABASE_CA_FILE')
      t.equal(right.plaintextRefused, 0, 'never a plain-text attempt')
    })

    await t.test('verify-full refuses a certificate for another name, and one no trusted CA signed', async (t) => {
      const named = await connects(wrongName, `sslmode=verify-full&sslrootcert=${pki.caFile}`)
      t.equal(named.ok, false)
      if (!named.ok) {
        t.equal(named.error.code, 'ERR_TLS_CERT_ALTNAME_INVALID')
        t.match(named.described, /its certificate does not name the host of DATABASE_URL/)
      }
      const system = await connects(right, 'sslmode=verify-full')
      t.equal(system.ok, false, 'the system\'s CAs do not vouch for a private CA\'s certificate')
      if (!system.ok) t.match(system.described, /its TLS certificate cannot be verified \([A-Z_]+: .*\); give the CA that signed it as sslrootcert in DATABASE_URL or DATABASE_CA_FILE/)
      const other = await connects(right, `sslmode=verify-full&sslrootcert=${pki.otherCaFile}`)
      t.equal(other.ok, false, 'another CA')
    })

    await t.test('verify-ca checks the chain, not the name', async (t) => {
      t.same(await connects(wrongName, `sslmode=verify-ca&sslrootcert=${pki.caFile}`), { ok: true })
      const other = await connects(wrongName, `sslmode=verify-ca&sslrootcert=${pki.otherCaFile}`)
      t.equal(other.ok, false)
    })

    await t.test('require encrypts without checking; with a CA it checks the chain', async (t) => {
      const before = wrongName.handshakes
      t.same(await connects(wrongName, 'sslmode=require'), { ok: true })
      t.ok(wrongName.handshakes > before, 'encrypted')
      t.equal((await connects(wrongName, `sslmode=require&sslrootcert=${pki.otherCaFile}`)).ok, false)
    })

    await t.test('without sslmode, or with disable, no TLS: a TLS-only server refuses', async (t) => {
      const before = right.plaintextRefused
      t.equal((await connects(right, 'sslmode=disable')).ok, false)
      t.ok(right.plaintextRefused > before)
    })

    await t.test('require against the test server itself: TLS or nothing, never a fallback', async (t) => {
      const { rows } = await admin.query<{ ssl: string }>('show ssl')
      const url = urlWith('sslmode=require')
      const db = open(url)
      if (rows[0]!.ssl === 'off') {
        const err = await reason(sql`select 1`.execute(db.kysely))
        t.match(describeDatabaseError(err, url, postgresSettingsFor(url)), /refused TLS \(The server does not support SSL connections\), and DATABASE_URL asks for sslmode=require: turn ssl on at the server, or use sslmode=disable/)
      } else {
        const { rows } = await sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(db.kysely)
        t.same(rows, [{ ssl: true }], 'the server has ssl on: the connection is encrypted')
      }
    })

    await t.test('the gateway and the CLI: mistakes stop them at once, a verified connection starts the gateway', async (t) => {
      const cwd = mkdtempSync(join(tmpdir(), 'authgate-pgtls-'))
      const missing = await runNode(MAIN, [], { env: gatewayEnv({ DATABASE_URL: urlWith('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem', right.port) }), cwd })
      t.equal(missing.code, 2, 'a configuration error')
      t.match(missing.stderr, /DATABASE_URL: sslrootcert=\/nonexistent\/ca\.pem cannot be read \(ENOENT\)/)
      t.equal(right.plaintextRefused + right.handshakes > 0, true)

      const cli = await runNode('src/cli/bin.ts', ['migrate'], { env: { ...gatewayEnv({ DATABASE_URL: urlWith('sslmode=prefer') }) } })
      t.equal(cli.code, 2, 'the CLI refuses the same')
      t.match(cli.stderr, /DATABASE_URL: sslmode=prefer falls back to an unencrypted connection/)
      const cliTimeout = await runNode('src/cli/bin.ts', ['migrate'], { env: gatewayEnv({ DATABASE_URL: base, DATABASE_STATEMENT_TIMEOUT: 'soon' }) })
      t.equal(cliTimeout.code, 2)
      t.match(cliTimeout.stderr, /DATABASE_STATEMENT_TIMEOUT: must be a whole number of seconds/)

      const { rows } = await admin.query<{ ssl: string }>('show ssl')
      if (rows[0]!.ssl === 'off') {
        const refused = await runNode(MAIN, [], { env: gatewayEnv({ DATABASE_URL: urlWith('sslmode=require') }), cwd })
        t.equal(refused.code, 1)
        t.match(refused.stderr, /authgate: failed to start: the database at \S+ refused TLS/)
        const cliRefused = await runNode('src/cli/bin.ts', ['migrate'], { env: gatewayEnv({ DATABASE_URL: urlWith('sslmode=require') }) })
        t.equal(cliRefused.code, 1)
        t.match(cliRefused.stderr, /authgate: error: the database at \S+ refused TLS/)
      }

      const impostor = await runNode(MAIN, [], { env: gatewayEnv({ DATABASE_URL: urlWith('sslmode=verify-full', wrongName.port), DATABASE_CA_FILE: pki.caFile }), cwd })
      t.equal(impostor.code, 1, 'a certificate for another name: no start')
      t.match(impostor.stderr, /authgate: failed to start: the database at \S+: its certificate does not name the host of DATABASE_URL/)

      const schema = await createPostgresSchema()
      t.teardown(schema.drop)
      const before = right.handshakes
      const gateway = spawn(process.execPath, await nodeArgs(MAIN), {
        cwd,
        env: gatewayEnv({ DATABASE_URL: urlWith(`sslmode=verify-full&options=${encodeURIComponent(`-c search_path=${schema.schema}`)}`, right.port), DATABASE_CA_FILE: pki.caFile }),
        stdio: ['ignore', 'pipe', 'pipe']
      })
      t.teardown(() => { gateway.kill('SIGKILL') })
      let output = ''
      gateway.stdout.on('data', (d) => { output += String(d) })
      gateway.stderr.on('data', (d) => { output += String(d) })
      let url: string | undefined
      await until('the gateway listens', async () => { url = /authgate listening on (http:\/\/\S+?)[" ]/.exec(output)?.[1]; return url !== undefined || gateway.exitCode !== null })
      t.ok(url, output)
      const ready = await http(`${url!}/_authgate/readyz`)
      t.equal(ready.status, 200, 'ready: its database answers, over TLS')
      t.ok(right.handshakes > before, 'through the TLS front')
    })
  })
}

/** The environment of a gateway or CLI process: loopback, ephemeral port, fixed secrets. */
function gatewayEnv (env: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_FORMAT: 'json',
    SECRET_KEY: 'pg-connection-secret-key-0123456789abcdef',
    HEADER_SIGNING_SECRET: 'pg-connection-header-secret-0123456789abcdef',
    UPSTREAM_URL: 'http://127.0.0.1:9',
    ...env
  }
}

/** A TCP server that accepts connections and never sends a byte. */
async function blackHole (): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => { sockets.add(socket); socket.on('error', () => {}) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
