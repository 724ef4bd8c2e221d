// Process entry: configuration, database and migrations, the app, listening, and a clean shutdown.
import { isIP, type AddressInfo } from 'node:net'
import { ConfigError, loadConfig } from './config/index.js'
import { configErrorReport, configWarnings } from './config/warnings.js'
import { describeDatabaseUrl, openDatabase } from './db/index.js'
import { migrateToLatest } from './db/migrate.js'
import { buildApp } from './app.js'
import { startDemoUpstream, type DemoUpstream } from './demo/upstream.js'
import { createLogger } from './logger.js'

async function main (): Promise<void> {
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
  const log = createLogger(config.logLevel)
  for (const warning of configWarnings(config)) log.warn(warning.fields ?? {}, warning.message)

  const db = openDatabase(config.databaseUrl)
  const applied = await migrateToLatest(db)
  log.info({ database: describeDatabaseUrl(config.databaseUrl), applied }, 'database ready')

  let demo: DemoUpstream | undefined
  let upstream = config.upstreamUrl
  if (upstream === undefined) {
    demo = await startDemoUpstream(config.headerSigningSecret)
    upstream = demo.url
    log.warn({ demo: demo.url.href }, 'UPSTREAM_URL is not set: serving the built-in DEMO upstream (development only)')
  }

  const gateway = await buildApp({ config, db, upstream, logger: log })
  await gateway.app.listen({ port: config.port, host: config.host })
  const { port } = gateway.app.server.address() as AddressInfo
  log.info({ host: config.host, upstream: upstream.origin, authMethod: config.authMethod, localAuth: config.localAuth }, `authgate listening on http://${displayHost(config.host)}:${port}`)

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    const force = setTimeout(() => { process.exit(1) }, 10_000)
    force.unref()
    void (async () => {
      await gateway.close()
      await demo?.close()
      await db.close()
      process.exit(0)
    })()
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
}

/** Where to point a browser on this machine: every interface includes localhost. */
function displayHost (host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return isIP(host) === 6 ? `[${host}]` : host
}

main().catch((err: Error) => {
  process.stderr.write(`authgate: failed to start: ${err.message}\n`)
  process.exit(1)
})
