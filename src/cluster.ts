// WORKERS=N (N > 1): N processes serving one port, with node:cluster. The primary has validated the
// configuration and migrated the database before it forks (main.ts); here it keeps N workers
// running, restarts one that dies (with a backoff, giving up when they fail at start time after
// time), stops them all on SIGTERM or SIGINT, and answers a metrics scrape with every worker's
// figures added up. Each worker is the gateway as WORKERS=1 runs it, on a port the primary shares.
//
// What is per worker (docs/DEPLOY.md#workers): OIDC_RATE_LIMIT's counts, the client limits per
// address, the revocation list's cache and refresh, the pending logouts of a database outage.
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { Logger } from 'pino'
import type { Metrics } from './ops/metrics.js'

/** One worker's figures, in prom-client's JSON form (what AggregatorRegistry.aggregate adds up). */
type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number]

/**
 * Set in the environment of the workers this primary forks: a process started as a worker by another
 * cluster (PM2's cluster mode, say) is not one of ours, and must migrate and serve as one process.
 */
const WORKER_MARK = 'AUTHGATE_WORKER'

/** This process is a worker of an authgate primary (WORKERS > 1). */
export const isGatewayWorker = cluster.isWorker && process.env[WORKER_MARK] === '1'

/** A worker that exits this many times in a row without having listened: the primary gives up (exit 1). */
export const MAX_START_FAILURES = 5
/** The first restart's delay; it doubles with each failure in a row, up to RESTART_MAX_DELAY_MS. */
const RESTART_BASE_DELAY_MS = 250
const RESTART_MAX_DELAY_MS = 30_000
/** How long a metrics scrape waits for every worker's figures. */
const METRICS_TIMEOUT_MS = 2000

/** The primary's and the workers' messages to one another (over the cluster's IPC channel). */
type Message =
  | { authgate: 'ready', port: number, metricsPort: number | undefined }
  // A worker asks the primary for the whole cluster's metrics; the answer has `text` or `error`.
  | { authgate: 'metrics', id: number, text?: string, error?: string }
  // The primary asks a worker for its own figures (prom-client's JSON form).
  | { authgate: 'worker-metrics', id: number, metrics?: MetricJson[] }

function isMessage (value: unknown): value is Message {
  return typeof value === 'object' && value !== null && typeof (value as { authgate?: unknown }).authgate === 'string'
}

/** Questions sent, waiting for their answer, each with a deadline. */
class PendingAnswers<T> {
  private next = 0
  private readonly pending = new Map<number, { resolve: (value: T) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()

  ask (timeoutMs: number, send: (id: number) => void): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.settle(id, new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      send(id)
    })
  }

  settle (id: number, outcome: T | Error): void {
    const waiting = this.pending.get(id)
    if (waiting === undefined) return
    this.pending.delete(id)
    clearTimeout(waiting.timer)
    if (outcome instanceof Error) waiting.reject(outcome)
    else waiting.resolve(outcome)
  }
}

export interface PrimaryOptions {
  workers: number
  /** SHUTDOWN_GRACE_PERIOD in ms, plus the time a worker may take to close the rest after it. */
  stopWithinMs: number
  log: Logger
  /** Every worker listens, for the first time: where (the ports the workers share). */
  listening: (ports: { port: number, metricsPort: number | undefined }) => void
}

/** The primary's work, from the first fork to its exit. */
export function runPrimary (options: PrimaryOptions): void {
  const { workers, log } = options
  const ready = new Set<Worker>()
  const everReady = new Set<number>()
  const restarts = new Set<NodeJS.Timeout>()
  const workerMetrics = new PendingAnswers<MetricJson[]>()
  let failuresInARow = 0
  let announced = false
  let stopping = false
  let exitCode = 0

  const fork = (): void => { cluster.fork({ [WORKER_MARK]: '1' }) }

  cluster.on('message', (worker, message: unknown) => {
    if (!isMessage(message)) return
    if (message.authgate === 'ready') {
      ready.add(worker)
      everReady.add(worker.id)
      failuresInARow = 0
      log.debug({ worker: worker.process.pid }, 'worker listening')
      if (!announced && ready.size === workers) {
        announced = true
        options.listening(message)
      }
    } else if (message.authgate === 'worker-metrics') {
      workerMetrics.settle(message.id, message.metrics ?? [])
    } else if (message.authgate === 'metrics') {
      void clusterMetrics().then(
        (text) => { send(worker, { authgate: 'metrics', id: message.id, text }) },
        (err: Error) => { send(worker, { authgate: 'metrics', id: message.id, error: err.message }) })
    }
  })

  /** Every listening worker's figures, added up (prom-client's aggregation: counters and histograms summed). */
  async function clusterMetrics (): Promise<string> {
    const figures = await Promise.all([...ready].map(async (worker) =>
      await workerMetrics.ask(METRICS_TIMEOUT_MS, (id) => { send(worker, { authgate: 'worker-metrics', id }) })))
    return await AggregatorRegistry.aggregate(figures).metrics()
  }

  cluster.on('exit', (worker, code, signal) => {
    ready.delete(worker)
    if (stopping) {
      if (code !== 0) exitCode = 1
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('stopped')
        process.exit(exitCode)
      }
      return
    }
    const started = everReady.has(worker.id)
    if (!started) failuresInARow++
    if (failuresInARow >= MAX_START_FAILURES) {
      log.error({ code, signal, failures: failuresInARow }, `workers keep failing at start (${failuresInARow} in a row): giving up`)
      stop('workers failing at start', 1)
      return
    }
    const delay = Math.min(RESTART_BASE_DELAY_MS * 2 ** failuresInARow, RESTART_MAX_DELAY_MS)
    log.error({ worker: worker.process.pid, code, signal, restartInMs: delay }, started ? 'a worker exited: starting another' : 'a worker failed to start: trying again')
    const timer = setTimeout(() => { restarts.delete(timer); fork() }, delay)
    restarts.add(timer)
  })

  function stop (reason: string, code = 0): void {
    if (stopping) return
    stopping = true
    exitCode = code
    for (const timer of restarts) clearTimeout(timer)
    log.info({ reason, workers: Object.keys(cluster.workers ?? {}).length }, 'shutting down: stopping the workers')
    // Each worker stops as WORKERS=1 does (main.ts): requests in progress get the grace period.
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode)
    const force = setTimeout(() => {
      log.error('workers did not stop in time; killing them')
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
      process.exit(1)
    }, options.stopWithinMs)
    force.unref()
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })

  for (let i = 0; i < workers; i++) fork()
}

function send (worker: Worker, message: Message): void {
  // A worker that has just exited cannot be told: its question dies with it.
  if (worker.isConnected()) worker.send(message)
}

/**
 * In a worker: tell the primary where it listens, answer its requests for this worker's figures, and
 * serve the whole cluster's metrics (asked of the primary) wherever this worker serves metrics.
 */
export function joinCluster (metrics: Metrics, ports: { port: number, metricsPort: number | undefined }): void {
  const clusterMetrics = new PendingAnswers<string>()
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return
    if (message.authgate === 'worker-metrics') {
      void metrics.registry.getMetricsAsJSON().then((figures) => { process.send?.({ authgate: 'worker-metrics', id: message.id, metrics: figures } satisfies Message) })
    } else if (message.authgate === 'metrics') {
      clusterMetrics.settle(message.id, message.text ?? new Error(`metrics of the other workers unavailable: ${message.error ?? 'no answer'}`))
    }
  })
  metrics.renderWith(async () => await clusterMetrics.ask(METRICS_TIMEOUT_MS * 2, (id) => { process.send?.({ authgate: 'metrics', id } satisfies Message) }))
  process.send?.({ authgate: 'ready', ...ports } satisfies Message)
}
