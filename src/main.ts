// Process entry: configuration, database and migrations, the app, listening, and a clean shutdown.
// With WORKERS > 1 this process is the primary (src/cluster.ts) and each worker runs `serve` below.
import { isIP, type AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { ConfigError, loadConfig, type Config } from './config/index.js'
import { configErrorReport, configWarnings } from './config/warnings.js'
import { describeDatabaseError, describeDatabaseUrl, openDatabase, SqliteFileError, type Db } from './db/index.js'
import { migrateToLatest } from './db/migrate.js'
import type { DemoUpstream } from './demo/upstream.js'
import { createLogger, isPretty } from './logger.js'
import { serverArguments } from './server-args.js'
import { startupBanner } from './banner.js'
import { isGatewayWorker, joinCluster, runPrimary } from './cluster.js'

async function main (): Promise<void> {
  const args = serverArguments(process.argv.slice(2))
  if (args !== undefined) {
    process.stdout.write(args.stdout ?? '')
    process.stderr.write(args.stderr ?? '')
    process.exit(args.exit)
  }
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`authgate: cannot start.\n${configErrorReport(err)}\n`)
      process.exit(2)
    }
    throw err
  }
  const log = createLogger(config.logLevel, config.logFormat)
  if (isGatewayWorker) {
    // The primary has warned about the configuration and migrated the database.
    await serve(config, log, openDatabase(config.databaseUrl, { log, postgres: config.postgres }))
    return
  }
  for (const warning of configWarnings(config)) log.warn(warning.fields ?? {}, warning.message)
  const db = await openAndMigrate(config, log)
  if (config.workers === 1) {
    await serve(config, log, db)
    return
  }
  // The workers open their own connections: the primary only forks, restarts and stops them.
  await db.close()
  runPrimary({
    workers: config.workers,
    stopWithinMs: config.shutdownGraceMs + FORCED_EXIT_AFTER_GRACE_MS,
    log,
    listening: ({ port, metricsPort }) => { announce(config, log, { port, metricsPort, upstream: config.upstreamUrl!, workers: config.workers }) }
  })
}

/** The database, migrated to the latest schema; a failure in the operator's terms, and the process exits. */
async function openAndMigrate (config: Config, log: Logger): Promise<Db> {
  let db: Db | undefined
  let applied: string[]
  try {
    db = openDatabase(config.databaseUrl, { log, postgres: config.postgres })
    applied = await migrateToLatest(db)
  } catch (err) {
    await db?.close().catch(() => {})
    // A damaged SQLite file, named with the variable that chose it: the operator's fix starts there.
    if (err instanceof SqliteFileError) {
      process.stderr.write(`authgate: cannot start: DATABASE_URL (${describeDatabaseUrl(config.databaseUrl)}): ${err.message}. Nothing was written to it. ` +
        'Restore it from a backup, or move it away to start with an empty database (users and sessions are then lost).\n')
      process.exit(1)
    }
    // PostgreSQL unreachable, silent, or refusing TLS: in the operator's terms (db/index.ts).
    throw new Error(describeDatabaseError(err, config.databaseUrl, config.postgres))
  }
  log.info({ database: describeDatabaseUrl(config.databaseUrl), applied }, 'database ready')
  return db
}

/** Build the gateway on an open, migrated database and listen; stop on SIGTERM or SIGINT. WORKERS=1, or one worker. */
async function serve (config: Config, log: Logger, db: Db): Promise<void> {
  let demo: DemoUpstream | undefined
  let upstream = config.upstreamUrl
  if (upstream === undefined) {
    // Loaded only here: production never runs it, and it brings the verifier package along.
    const { startDemoUpstream } = await import('./demo/upstream.js')
    demo = await startDemoUpstream(config.headerSigningSecret)
    upstream = demo.url
    log.warn({ demo: demo.url.href }, 'UPSTREAM_URL is not set: serving the built-in DEMO upstream (development only)')
  }

  const { buildApp } = await import('./app.js')
  const gateway = await buildApp({ config, db, upstream, logger: log })
  try {
    await gateway.app.listen({ port: config.port, host: config.host })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    throw new Error(`port ${config.port} on ${config.host} is already in use (another authgate?); stop it, or start this one on another port: PORT=8090 npm start`)
  }
  const { port } = gateway.app.server.address() as AddressInfo
  if (gateway.metricsApp !== undefined && config.metrics !== undefined) await gateway.metricsApp.listen({ port: config.metrics.port, host: config.metrics.host })
  const metricsPort = gateway.metricsApp !== undefined ? (gateway.metricsApp.server.address() as AddressInfo).port : undefined
  if (isGatewayWorker) {
    joinCluster(gateway.metrics, { port, metricsPort })
  } else {
    announce(config, log, { port, metricsPort, upstream, demo: demo !== undefined })
  }

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal, graceSeconds: config.shutdownGraceMs / 1000 }, 'shutting down: no new connections; requests and WebSockets in progress may finish')
    // close() ends everything within the grace period (net/shutdown.ts); the rest (the database) gets
    // a few seconds more, and a process that still has not exited by then is stuck: exit 1.
    const force = setTimeout(() => {
      log.error('shutdown did not complete in time; exiting')
      process.exit(1)
    }, config.shutdownGraceMs + FORCED_EXIT_AFTER_GRACE_MS)
    force.unref()
    void (async () => {
      await gateway.close()
      await demo?.close()
      await db.close()
      log.info({ signal }, 'stopped')
      process.exit(0)
    })()
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  // A worker whose primary is gone (killed, crashed) stops as if told to: nobody would restart or stop it.
  if (isGatewayWorker) process.on('disconnect', () => { stop('primary gone') })
}

/** Where the gateway listens, once: from the process itself, or from the primary once every worker listens. */
function announce (config: Config, log: Logger, where: { port: number, metricsPort: number | undefined, upstream: URL, demo?: boolean, workers?: number }): void {
  const { port, metricsPort, upstream } = where
  const url = `http://${displayHost(config.host)}:${port}`
  // The upstream with its path: UPSTREAM_URL=http://app:5000/app is not the same as http://app:5000.
  const upstreamUrl = `${upstream.origin}${upstream.pathname}`
  const workers = where.workers !== undefined ? `, ${where.workers} workers` : ''
  log.info({ listen: `${config.host}:${port}`, upstream: upstreamUrl, authMethod: config.authMethod, localAuth: config.localAuth, ...(where.workers !== undefined ? { workers: where.workers } : {}) },
    `authgate listening on ${url} (upstream ${upstreamUrl}${workers})`)
  if (!config.production && isPretty(config.logFormat)) process.stdout.write(startupBanner(config, { url, upstream, demo: where.demo === true }))
  if (metricsPort !== undefined && config.metrics !== undefined) {
    log.info({ host: config.metrics.host }, `metrics on http://${displayHost(config.metrics.host)}:${metricsPort}/metrics (not on the public port)`)
  }
}

/** After the grace period, how long closing the rest may take before the process gives up (exit 1). */
const FORCED_EXIT_AFTER_GRACE_MS = 5000

/** Where to point a browser on this machine: every interface includes localhost. */
function displayHost (host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return isIP(host) === 6 ? `[${host}]` : host
}

main().catch((err: Error) => {
  process.stderr.write(`authgate: failed to start: ${err.message}\n`)
  process.exit(1)
})
