// Where users, sessions and the sign-in throttle are stored, and how PostgreSQL is reached: the pool,
// its timeouts and TLS. Shared with the CLI, which reads and checks these settings the same way
// before it opens anything.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Fail, Reader } from './environment.js'
import { parseIntIn } from './parse.js'

export const DEFAULT_DATABASE_URL = 'sqlite:./data/authgate.db'

/** Defaults of DATABASE_POOL_SIZE (connections), DATABASE_CONNECT_TIMEOUT and DATABASE_STATEMENT_TIMEOUT (seconds). */
export const DATABASE_DEFAULTS = { poolSize: 10, connectTimeout: 5, statementTimeout: 10 }

/**
 * The libpq sslmodes authgate accepts, with libpq's meaning: require encrypts (and, given a CA,
 * checks the certificate's chain as verify-ca does); verify-ca also checks the chain against the CA;
 * verify-full also checks that the certificate names the host of DATABASE_URL. allow and prefer are
 * refused: they fall back to an unencrypted connection when TLS fails.
 */
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const
export type SslMode = typeof SSL_MODES[number]

export interface PostgresSettings {
  /**
   * DATABASE_URL without its TLS parameters: node-postgres would read them itself, with its own
   * meaning of sslmode (every mode but disable is verify-full in pg 8, libpq's in pg 9) and the files
   * read at each new connection, where an unreadable one fails the first query, not the start.
   */
  connectionString: string
  /** DATABASE_POOL_SIZE: connections kept to the database at most. */
  poolSize: number
  /** DATABASE_CONNECT_TIMEOUT in ms: to open a connection, or to wait for a free one of the pool. */
  connectTimeoutMs: number
  /** DATABASE_STATEMENT_TIMEOUT in ms, the sessions' statement_timeout; 0: none. */
  statementTimeoutMs: number
  /** undefined: DATABASE_URL names no sslmode (node-postgres's default: no TLS, unless PGSSLMODE says otherwise). */
  sslmode: SslMode | undefined
  /** The CA certificates (PEM) the server's certificate must chain to; undefined: the system's (Node's) CAs. */
  ca?: string
  /** The file `ca` was read from, and which setting named it. */
  caFile?: string
  caFrom?: 'sslrootcert' | 'DATABASE_CA_FILE'
  /** A client certificate and its key (sslcert, sslkey), for servers that require one. */
  cert?: string
  key?: string
}

export interface DatabaseConfig {
  databaseUrl: string
  /** How PostgreSQL is reached; undefined with SQLite. */
  postgres: PostgresSettings | undefined
}

/** Why this DATABASE_URL cannot be used, or undefined. */
export function databaseUrlProblem (url: string): string | undefined {
  if (!/^sqlite:.+/.test(url) && !/^postgres(ql)?:\/\//.test(url)) {
    return 'must be sqlite:<path> (e.g. sqlite:./data/authgate.db) or postgres://user:password@host:5432/db'
  }
  return undefined
}

/** The URL with its password hidden, for log lines and `authgate config check`. */
export function maskDatabaseUrl (url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/gi, '$1***')
}

export function parseDatabase (r: Reader, cwd: string): Partial<DatabaseConfig> {
  const { get, fail } = r
  const databaseUrl = get('DATABASE_URL') ?? DEFAULT_DATABASE_URL
  const problem = databaseUrlProblem(databaseUrl)
  if (problem !== undefined) return { databaseUrl: fail('DATABASE_URL', problem) }
  const poolSize = parseIntIn(get('DATABASE_POOL_SIZE') ?? String(DATABASE_DEFAULTS.poolSize), 1, 1000) ??
    fail('DATABASE_POOL_SIZE', 'must be a whole number of connections from 1 to 1000')
  const connectTimeout = parseIntIn(get('DATABASE_CONNECT_TIMEOUT') ?? String(DATABASE_DEFAULTS.connectTimeout), 1, 600) ??
    fail('DATABASE_CONNECT_TIMEOUT', 'must be a whole number of seconds from 1 to 600')
  const statementTimeout = parseIntIn(get('DATABASE_STATEMENT_TIMEOUT') ?? String(DATABASE_DEFAULTS.statementTimeout), 0, 3600) ??
    fail('DATABASE_STATEMENT_TIMEOUT', 'must be a whole number of seconds from 0 (no limit) to 3600')
  const caFile = get('DATABASE_CA_FILE')
  if (databaseUrl.startsWith('sqlite:')) {
    if (caFile !== undefined) fail('DATABASE_CA_FILE', 'applies to PostgreSQL only, and DATABASE_URL is SQLite; remove it, or point DATABASE_URL at PostgreSQL')
    return { databaseUrl, postgres: undefined }
  }
  const tls = postgresTls(databaseUrl, { caFile, cwd }, fail)
  if (tls === undefined || poolSize === undefined || connectTimeout === undefined || statementTimeout === undefined) return { databaseUrl }
  return {
    databaseUrl,
    postgres: { ...tls, poolSize, connectTimeoutMs: connectTimeout * 1000, statementTimeoutMs: statementTimeout * 1000 }
  }
}

/**
 * The settings for a PostgreSQL URL given without the DATABASE_* variables (tests, scripts): the
 * defaults, and the URL's TLS parameters read as the gateway reads them. Throws on a problem.
 */
export function postgresSettingsFor (url: string, options: { cwd?: string, caFile?: string } = {}): PostgresSettings {
  const problems: string[] = []
  const tls = postgresTls(url, { cwd: options.cwd ?? process.cwd(), caFile: options.caFile }, (name, message) => { problems.push(`${name}: ${message}`); return undefined })
  if (tls === undefined) throw new Error(problems.join('; '))
  return {
    ...tls,
    poolSize: DATABASE_DEFAULTS.poolSize,
    connectTimeoutMs: DATABASE_DEFAULTS.connectTimeout * 1000,
    statementTimeoutMs: DATABASE_DEFAULTS.statementTimeout * 1000
  }
}

type TlsSettings = Pick<PostgresSettings, 'connectionString' | 'sslmode' | 'ca' | 'caFile' | 'caFrom' | 'cert' | 'key'>

/** The TLS parameters libpq reads from the URL that authgate reads too; any other ssl… parameter is refused. */
const TLS_PARAMETERS = new Set(['sslmode', 'sslrootcert', 'sslcert', 'sslkey'])

/**
 * DATABASE_URL's TLS parameters (and DATABASE_CA_FILE), checked and their files read now, so a
 * mistake stops the start with its name instead of failing the first query or, worse, connecting
 * with less protection than asked for.
 */
function postgresTls (url: string, options: { caFile?: string, cwd: string }, fail: Fail): TlsSettings | undefined {
  const queryStart = url.indexOf('?')
  const pairs = queryStart < 0 ? [] : url.slice(queryStart + 1).split('&').filter((p) => p !== '')
  const params = new Map<string, string>()
  const kept: string[] = []
  let ok = true
  for (const pair of pairs) {
    const [rawKey = '', ...rest] = pair.split('=')
    const key = safeDecode(rawKey)
    if (!key.toLowerCase().startsWith('ssl') && key !== 'uselibpqcompat') {
      kept.push(pair)
      continue
    }
    if (!TLS_PARAMETERS.has(key)) {
      ok = fail('DATABASE_URL', `${key} is not supported; set TLS with sslmode (${SSL_MODES.join(', ')}), and sslrootcert, sslcert and sslkey as libpq reads them`) ?? false
      continue
    }
    params.set(key, safeDecode(rest.join('=').replace(/\+/g, ' ')))
  }
  const connectionString = queryStart < 0 ? url : url.slice(0, queryStart) + (kept.length > 0 ? '?' + kept.join('&') : '')

  const rootcert = params.get('sslrootcert')
  if (rootcert !== undefined && options.caFile !== undefined) {
    return fail('DATABASE_CA_FILE', 'is set together with sslrootcert in DATABASE_URL; give the CA only once')
  }
  const system = rootcert === 'system'
  const ca = system || rootcert === undefined
    ? (options.caFile !== undefined ? readPem('DATABASE_CA_FILE', options.caFile, options.cwd, 'CERTIFICATE', fail) : undefined)
    : readPem('DATABASE_URL', rootcert, options.cwd, 'CERTIFICATE', fail, 'sslrootcert=')
  const caFile = system ? undefined : rootcert ?? options.caFile
  if (caFile !== undefined && ca === undefined) ok = false

  const given = params.get('sslmode')
  let sslmode: SslMode | undefined
  if (given === undefined) {
    // A CA given without a mode asks for the server's certificate to be checked: the strictest mode.
    sslmode = ca !== undefined || system ? 'verify-full' : undefined
  } else if ((SSL_MODES as readonly string[]).includes(given)) {
    sslmode = given as SslMode
  } else if (given === 'allow' || given === 'prefer') {
    return fail('DATABASE_URL', `sslmode=${given} falls back to an unencrypted connection when TLS fails, which authgate does not do; ` +
      'use sslmode=verify-full (encrypted, the server\'s certificate and name checked), require (encrypted only) or disable')
  } else {
    return fail('DATABASE_URL', `sslmode=${given} is not one of ${SSL_MODES.join(', ')}`)
  }
  if (sslmode === 'disable' && (caFile !== undefined || system || params.has('sslcert'))) {
    return fail(options.caFile !== undefined ? 'DATABASE_CA_FILE' : 'DATABASE_URL', 'gives TLS certificates, yet DATABASE_URL has sslmode=disable; remove one of them')
  }
  if (system && sslmode !== 'verify-full') {
    return fail('DATABASE_URL', 'sslrootcert=system needs sslmode=verify-full: any public CA can vouch for a certificate, so only its name tells the server apart')
  }
  if (sslmode === 'verify-ca' && caFile === undefined) {
    return fail('DATABASE_URL', 'sslmode=verify-ca needs the CA that signed the server\'s certificate: add sslrootcert=/path/ca.pem or set DATABASE_CA_FILE ' +
      '(or use sslmode=verify-full, which also checks the name, against the system\'s CAs by default)')
  }

  const certPath = params.get('sslcert')
  const keyPath = params.get('sslkey')
  if ((certPath === undefined) !== (keyPath === undefined)) {
    return fail('DATABASE_URL', 'sslcert and sslkey go together (the client certificate and its private key); give both or neither')
  }
  const cert = certPath !== undefined ? readPem('DATABASE_URL', certPath, options.cwd, 'CERTIFICATE', fail, 'sslcert=') : undefined
  const key = keyPath !== undefined ? readPem('DATABASE_URL', keyPath, options.cwd, 'PRIVATE KEY', fail, 'sslkey=') : undefined
  if ((certPath !== undefined && cert === undefined) || (keyPath !== undefined && key === undefined)) ok = false
  if (!ok) return undefined

  return {
    connectionString,
    sslmode,
    ...(ca !== undefined ? { ca } : {}),
    ...(caFile !== undefined ? { caFile, caFrom: rootcert !== undefined ? 'sslrootcert' as const : 'DATABASE_CA_FILE' as const } : {}),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {})
  }
}

/** A PEM file's text, or a problem naming the setting (never its contents: a key is a secret). */
function readPem (name: string, path: string, cwd: string, label: string, fail: Fail, prefix = ''): string | undefined {
  let text: string
  try {
    text = readFileSync(resolve(cwd, path), 'utf8')
  } catch (err) {
    return fail(name, `${prefix}${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); ` +
      (label === 'CERTIFICATE' ? 'point it at a readable PEM file' : 'point it at a readable PEM private key'))
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
    return fail(name, `${prefix}${path} holds no PEM ${label === 'CERTIFICATE' ? 'certificate' : 'private key'} (-----BEGIN ${label}-----)`)
  }
  return text
}

function safeDecode (value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
