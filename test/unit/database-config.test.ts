// DATABASE_POOL_SIZE, DATABASE_CONNECT_TIMEOUT, DATABASE_STATEMENT_TIMEOUT, DATABASE_CA_FILE and the
// TLS parameters of DATABASE_URL: what each value becomes in node-postgres's options, and every
// mistake refused at startup with its name. The same settings against a real PostgreSQL (and a real
// TLS endpoint in front of it): test/db/postgres-connection.test.ts.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Config } from '../../src/config/index.js'
import { describeConfig } from '../../src/config/describe.js'
import { configWarnings } from '../../src/config/warnings.js'
import { postgresSettingsFor } from '../../src/config/database.js'
import { describeDatabaseError, postgresPoolConfig, postgresSsl } from '../../src/db/index.js'
import { configRefusal } from '../support/config.js'

const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const PG = 'postgres://authgate:hunter2-secret@db.internal:5432/authgate'
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n'
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIBfake\n-----END PRIVATE KEY-----\n'

const cwd = mkdtempSync(join(tmpdir(), 'authgate-dbconfig-'))
writeFileSync(join(cwd, 'ca.pem'), CERT)
writeFileSync(join(cwd, 'other-ca.pem'), CERT.replace('fake', 'other'))
writeFileSync(join(cwd, 'client.pem'), CERT)
writeFileSync(join(cwd, 'client.key'), KEY)
writeFileSync(join(cwd, 'not-pem.txt'), 'hello')

const load = (env: Record<string, string>): Config => loadConfig({ ...secrets, ...env }, { cwd, dotenv: false })
/** The refusal's lines (`NAME: message`), or [] when the configuration loads. */
const refusal = (env: Record<string, string>): string[] => configRefusal({ ...secrets, ...env }, cwd)

t.test('defaults: a pool of 10, 5 s to connect, 10 s per statement; nothing for SQLite', async (t) => {
  const c = load({ DATABASE_URL: PG })
  t.same(c.postgres, { connectionString: PG, sslmode: undefined, poolSize: 10, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 })
  const pool = postgresPoolConfig(c.postgres!)
  t.equal(pool.connectionString, PG)
  t.equal(pool.max, 10)
  t.equal(pool.connectionTimeoutMillis, 5000)
  t.equal(pool.statement_timeout, 10_000, 'sent as the session\'s statement_timeout')
  t.equal(pool.keepAlive, true)
  t.equal(pool.fallback_application_name, 'authgate')
  t.notOk('ssl' in pool, 'no sslmode: node-postgres\'s own default (no TLS, or PGSSLMODE)')
  t.notOk('options' in pool)
  t.equal(postgresPoolConfig(c.postgres!, 'tenant_a').options, '-c search_path=tenant_a')

  const sqlite = load({ DATABASE_URL: 'sqlite:./x.db', DATABASE_POOL_SIZE: '3' })
  t.equal(sqlite.postgres, undefined)
  const shown = Object.fromEntries(describeConfig(sqlite, {}, {}).map((s) => [s.name, s.value]))
  t.equal(shown.DATABASE_POOL_SIZE, undefined, 'config check: not used with SQLite')
  t.equal(shown.DATABASE_STATEMENT_TIMEOUT, undefined)
})

t.test('the variables set, and shown by config check', async (t) => {
  const c = load({ DATABASE_URL: PG, DATABASE_POOL_SIZE: '25', DATABASE_CONNECT_TIMEOUT: '2', DATABASE_STATEMENT_TIMEOUT: '30', DATABASE_CA_FILE: 'ca.pem' })
  t.match(c.postgres, { poolSize: 25, connectTimeoutMs: 2000, statementTimeoutMs: 30_000, sslmode: 'verify-full', ca: CERT, caFile: 'ca.pem', caFrom: 'DATABASE_CA_FILE' })
  const pool = postgresPoolConfig(c.postgres!)
  t.match(pool, { max: 25, connectionTimeoutMillis: 2000, statement_timeout: 30_000 })
  const env = { DATABASE_POOL_SIZE: '25', DATABASE_CONNECT_TIMEOUT: '2', DATABASE_STATEMENT_TIMEOUT: '30', DATABASE_CA_FILE: 'ca.pem' }
  const shown = Object.fromEntries(describeConfig(c, { ...env, DATABASE_URL: PG }, { ...env, DATABASE_URL: PG }).map((s) => [s.name, `${s.value ?? '-'} (${s.source})`]))
  t.equal(shown.DATABASE_POOL_SIZE, '25 (environment)')
  t.equal(shown.DATABASE_CONNECT_TIMEOUT, '2 (environment)')
  t.equal(shown.DATABASE_STATEMENT_TIMEOUT, '30 (environment)')
  t.equal(shown.DATABASE_CA_FILE, 'ca.pem (environment)')
  t.equal(shown.DATABASE_URL, 'postgres://authgate:***@db.internal:5432/authgate (environment)', 'the password masked')

  const off = load({ DATABASE_URL: PG, DATABASE_STATEMENT_TIMEOUT: '0' })
  t.equal(off.postgres?.statementTimeoutMs, 0)
  t.notOk('statement_timeout' in postgresPoolConfig(off.postgres!), '0: no statement_timeout sent (the server\'s or the role\'s applies)')
})

t.test('bad values stop the start, one clear line each', async (t) => {
  t.same(refusal({ DATABASE_URL: PG, DATABASE_POOL_SIZE: '0', DATABASE_CONNECT_TIMEOUT: '1.5', DATABASE_STATEMENT_TIMEOUT: '-1' }), [
    'DATABASE_POOL_SIZE: must be a whole number of connections from 1 to 1000',
    'DATABASE_CONNECT_TIMEOUT: must be a whole number of seconds from 1 to 600',
    'DATABASE_STATEMENT_TIMEOUT: must be a whole number of seconds from 0 (no limit) to 3600'
  ])
  t.same(refusal({ DATABASE_URL: PG, DATABASE_POOL_SIZE: 'ten' }), ['DATABASE_POOL_SIZE: must be a whole number of connections from 1 to 1000'])
  t.same(refusal({ DATABASE_URL: PG, DATABASE_POOL_SIZE: '1001' }), ['DATABASE_POOL_SIZE: must be a whole number of connections from 1 to 1000'])
  t.same(refusal({ DATABASE_URL: PG, DATABASE_CONNECT_TIMEOUT: '0' }), ['DATABASE_CONNECT_TIMEOUT: must be a whole number of seconds from 1 to 600'], 'never wait forever to connect')
  t.same(refusal({ DATABASE_URL: 'sqlite:./x.db', DATABASE_POOL_SIZE: 'ten' }), ['DATABASE_POOL_SIZE: must be a whole number of connections from 1 to 1000'], 'checked with SQLite too: a switch to PostgreSQL must not be the first to notice')
  t.same(refusal({ DATABASE_URL: 'sqlite:./x.db', DATABASE_CA_FILE: 'ca.pem' }),
    ['DATABASE_CA_FILE: applies to PostgreSQL only, and DATABASE_URL is SQLite; remove it, or point DATABASE_URL at PostgreSQL'])
})

t.test('sslmode as libpq means it, mapped to Node\'s TLS options', async (t) => {
  const ssl = (query: string, env: Record<string, string> = {}): ReturnType<typeof postgresSsl> => postgresSsl(load({ DATABASE_URL: `${PG}?${query}`, ...env }).postgres!)

  t.equal(ssl('sslmode=disable'), false, 'disable: no TLS, whatever PGSSLMODE says')
  t.same(ssl('sslmode=require'), { rejectUnauthorized: false }, 'require: encrypted, the certificate not checked')

  const full = ssl('sslmode=verify-full') as Record<string, unknown>
  t.same(full, { rejectUnauthorized: true }, 'verify-full: chain and name checked, against the system\'s CAs')
  t.notOk('checkServerIdentity' in full, 'Node\'s own name check stays')
  t.same(ssl('sslmode=verify-full&sslrootcert=ca.pem'), { rejectUnauthorized: true, ca: CERT })
  t.same(ssl('sslmode=verify-full&sslrootcert=system'), { rejectUnauthorized: true }, 'sslrootcert=system: the system\'s CAs, as libpq 16')

  const verifyCa = ssl('sslmode=verify-ca&sslrootcert=ca.pem') as { ca: string, rejectUnauthorized: boolean, checkServerIdentity: (host: string, cert: unknown) => Error | undefined }
  t.equal(verifyCa.rejectUnauthorized, true)
  t.equal(verifyCa.ca, CERT)
  t.equal(verifyCa.checkServerIdentity('db.internal', {}), undefined, 'verify-ca: the chain is checked, the name is not')
  const viaFile = ssl('sslmode=verify-ca', { DATABASE_CA_FILE: join(cwd, 'ca.pem') }) as { ca: string }
  t.equal(viaFile.ca, CERT, 'DATABASE_CA_FILE: the same as sslrootcert')

  const requireWithCa = ssl('sslmode=require&sslrootcert=ca.pem') as { ca: string, rejectUnauthorized: boolean, checkServerIdentity: unknown }
  t.match(requireWithCa, { rejectUnauthorized: true, ca: CERT }, 'require with a CA checks the chain, as libpq does')
  t.type(requireWithCa.checkServerIdentity, 'function')

  t.same(ssl('sslrootcert=ca.pem'), { rejectUnauthorized: true, ca: CERT }, 'a CA without sslmode: verify-full, the strictest')
  t.same(ssl('', { DATABASE_CA_FILE: 'ca.pem' }), { rejectUnauthorized: true, ca: CERT })
  t.same(ssl('sslmode=verify-full&sslcert=client.pem&sslkey=client.key'), { rejectUnauthorized: true, cert: CERT, key: KEY }, 'a client certificate')
})

t.test('the TLS parameters are taken out of the URL node-postgres reads; the others stay', async (t) => {
  const c = load({ DATABASE_URL: `${PG}?application_name=gw-1&sslmode=verify-full&sslrootcert=ca.pem&options=-c%20search_path%3Dtenant` })
  t.equal(c.postgres?.connectionString, `${PG}?application_name=gw-1&options=-c%20search_path%3Dtenant`)
  t.equal(c.databaseUrl, `${PG}?application_name=gw-1&sslmode=verify-full&sslrootcert=ca.pem&options=-c%20search_path%3Dtenant`, 'the URL itself is kept as given (logs, config check)')
  t.equal(load({ DATABASE_URL: `${PG}?sslmode=require` }).postgres?.connectionString, PG)
  t.equal(postgresSettingsFor(`${PG}?sslmode=require`).connectionString, PG, 'the same without the variables (tests, scripts)')
  t.throws(() => postgresSettingsFor(`${PG}?sslmode=prefer`), /DATABASE_URL: sslmode=prefer falls back/)
})

t.test('every TLS mistake stops the start, naming the setting; no downgrade, no secret in the message', async (t) => {
  const url = (query: string): Record<string, string> => ({ DATABASE_URL: `${PG}?${query}` })
  for (const mode of ['prefer', 'allow']) {
    t.same(refusal(url(`sslmode=${mode}`)), [`DATABASE_URL: sslmode=${mode} falls back to an unencrypted connection when TLS fails, which authgate does not do; ` +
      'use sslmode=verify-full (encrypted, the server\'s certificate and name checked), require (encrypted only) or disable'])
  }
  t.same(refusal(url('sslmode=verify_full')), ['DATABASE_URL: sslmode=verify_full is not one of disable, require, verify-ca, verify-full'])
  t.same(refusal(url('sslmode=no-verify')), ['DATABASE_URL: sslmode=no-verify is not one of disable, require, verify-ca, verify-full'], 'node-postgres\'s own no-verify is not taken')
  t.match(refusal(url('ssl=true')), [/^DATABASE_URL: ssl is not supported; set TLS with sslmode \(disable, require, verify-ca, verify-full\)/])
  t.match(refusal(url('uselibpqcompat=true&sslmode=require')), [/^DATABASE_URL: uselibpqcompat is not supported/])

  t.same(refusal(url('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem')), ['DATABASE_URL: sslrootcert=/nonexistent/ca.pem cannot be read (ENOENT); point it at a readable PEM file'],
    'an unreadable CA file: refused at the start, not at the first query')
  t.same(refusal({ DATABASE_URL: `${PG}?sslmode=verify-full`, DATABASE_CA_FILE: 'missing.pem' }), ['DATABASE_CA_FILE: missing.pem cannot be read (ENOENT); point it at a readable PEM file'])
  t.same(refusal(url('sslrootcert=not-pem.txt')), ['DATABASE_URL: sslrootcert=not-pem.txt holds no PEM certificate (-----BEGIN CERTIFICATE-----)'])
  t.same(refusal(url(`sslrootcert=${encodeURIComponent(cwd)}`)), ['DATABASE_URL: sslrootcert=' + cwd + ' cannot be read (EISDIR); point it at a readable PEM file'])
  t.same(refusal({ DATABASE_URL: `${PG}?sslrootcert=ca.pem`, DATABASE_CA_FILE: 'other-ca.pem' }), ['DATABASE_CA_FILE: is set together with sslrootcert in DATABASE_URL; give the CA only once'])

  t.match(refusal(url('sslmode=verify-ca')), [/^DATABASE_URL: sslmode=verify-ca needs the CA that signed the server's certificate: add sslrootcert=\/path\/ca.pem or set DATABASE_CA_FILE/])
  t.match(refusal(url('sslmode=require&sslrootcert=system')), [/^DATABASE_URL: sslrootcert=system needs sslmode=verify-full/])
  t.match(refusal(url('sslmode=disable&sslrootcert=ca.pem')), [/^DATABASE_URL: gives TLS certificates, yet DATABASE_URL has sslmode=disable/])
  t.match(refusal({ DATABASE_URL: `${PG}?sslmode=disable`, DATABASE_CA_FILE: 'ca.pem' }), [/^DATABASE_CA_FILE: gives TLS certificates, yet DATABASE_URL has sslmode=disable/])
  t.match(refusal(url('sslmode=require&sslcert=client.pem')), [/^DATABASE_URL: sslcert and sslkey go together/])
  t.same(refusal(url('sslmode=require&sslcert=client.pem&sslkey=client.pem')), ['DATABASE_URL: sslkey=client.pem holds no PEM private key (-----BEGIN PRIVATE KEY-----)'])

  const all = refusal(url('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem&sslcert=client.pem&sslkey=/nonexistent/key.pem')).join('\n')
  t.match(all, /sslrootcert=\/nonexistent\/ca.pem cannot be read/)
  t.match(all, /sslkey=\/nonexistent\/key.pem cannot be read/, 'every problem at once')
  t.notMatch(all, /hunter2/, 'the password never appears')
  t.notMatch(refusal(url('sslmode=require&sslcert=client.pem&sslkey=client.pem')).join('\n'), /MIIB/, 'nor a file\'s contents')
})

t.test('require without a CA is allowed, with a warning', async (t) => {
  const warnings = (query: string): string[] => configWarnings(load({ DATABASE_URL: `${PG}?${query}`, LOCAL_AUTH: 'password' })).map((w) => w.message)
  t.match(warnings('sslmode=require'), [/^DATABASE_URL: sslmode=require encrypts the connection to PostgreSQL but does not check who answers/])
  t.same(warnings('sslmode=require&sslrootcert=ca.pem'), [], 'with a CA: checked, no warning')
  t.same(warnings('sslmode=verify-full'), [])
})

t.test('a misspelt DATABASE_ variable is reported with the name it most likely means', async (t) => {
  t.same(load({ DATABASE_URL: PG, DATABASE_POOLSIZE: '5', DATABASE_STATEMENT_TIMEOUTS: '3' }).unknownVariables, [
    { name: 'DATABASE_POOLSIZE', didYouMean: 'DATABASE_POOL_SIZE' },
    { name: 'DATABASE_STATEMENT_TIMEOUTS', didYouMean: 'DATABASE_STATEMENT_TIMEOUT' }
  ])
})

t.test('a parameter that is not valid percent-encoding is read as written', async (t) => {
  t.same(refusal({ DATABASE_URL: `${PG}?sslrootcert=%E0%A4%A` }), ['DATABASE_URL: sslrootcert=%E0%A4%A cannot be read (ENOENT); point it at a readable PEM file'])
})

t.test('a database error described for the operator: the database named, its password masked', async (t) => {
  t.equal(describeDatabaseError(Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }), PG),
    'the database at postgres://authgate:***@db.internal:5432/authgate: connect ECONNREFUSED 10.0.0.5:5432')
  t.equal(describeDatabaseError('not an Error', 'sqlite:./x.db'), 'the database at sqlite:./x.db: not an Error')
})
