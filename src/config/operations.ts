// What operators scrape, how many processes serve, and how the gateway stops: the metrics listener,
// the worker count and the shutdown grace.
import { availableParallelism } from 'node:os'
import type { Reader } from './environment.js'
import { parseIntIn } from './parse.js'

export interface OperationsConfig {
  /**
   * METRICS_PORT (and METRICS_HOST): /metrics and the detailed readiness on a listener of their own,
   * and /_authgate/metrics no longer on the public port. undefined: metrics stay on the public port.
   */
  metrics: { port: number, host: string } | undefined
  /** SHUTDOWN_GRACE_PERIOD in ms: how long requests and WebSockets in progress may take to finish after SIGTERM. */
  shutdownGraceMs: number
  /**
   * WORKERS: processes serving the port (node:cluster, src/cluster.ts). 1: this process alone, no
   * cluster, as before the setting existed.
   */
  workers: number
}

/** WORKERS at most: past the cores of any machine this runs on, more processes only cost memory. */
export const MAX_WORKERS = 64

/** SHUTDOWN_GRACE_PERIOD's default, in seconds. */
export const SHUTDOWN_GRACE_DEFAULT = 20

export function parseOperations (r: Reader, publicListener: { host?: string, port?: number, upstreamUrl?: URL | undefined }): Partial<OperationsConfig> {
  const { get, fail } = r
  const metrics = parseMetricsListener(r, publicListener)
  const workers = parseWorkers(r, publicListener.upstreamUrl !== undefined)
  // Kubernetes kills a pod 30 s after SIGTERM by default (terminationGracePeriodSeconds): 20 s of
  // grace plus main.ts's 5 s to close the rest ends well before that.
  const grace = parseIntIn(get('SHUTDOWN_GRACE_PERIOD') ?? String(SHUTDOWN_GRACE_DEFAULT), 0, 3600) ??
    fail('SHUTDOWN_GRACE_PERIOD', 'must be a whole number of seconds from 0 to 3600')
  return { metrics, shutdownGraceMs: grace === undefined ? undefined : grace * 1000, workers }
}

/**
 * WORKERS: a whole number from 1 to 64, or `auto`: one per CPU this process may use
 * (os.availableParallelism: a container's CPU limit is not seen, hence a number there). The built-in
 * demo upstream (no UPSTREAM_URL) is one development process: refused with more than one worker.
 */
export function parseWorkers ({ get, fail }: Pick<Reader, 'get' | 'fail'>, hasUpstream: boolean, cpus: () => number = availableParallelism): number | undefined {
  const value = get('WORKERS')
  if (value === undefined) return 1
  const workers = value.trim().toLowerCase() === 'auto' ? Math.min(cpus(), MAX_WORKERS) : parseIntIn(value, 1, MAX_WORKERS)
  if (workers === undefined) return fail('WORKERS', `must be a whole number from 1 to ${MAX_WORKERS}, or auto (one per CPU: ${cpus()} here)`)
  if (workers > 1 && !hasUpstream) return fail('WORKERS', `is ${workers} without UPSTREAM_URL: the built-in demo upstream runs in one process; set UPSTREAM_URL, or WORKERS=1`)
  return workers
}

/**
 * The metrics listener. It listens where the gateway does unless METRICS_HOST says otherwise: in a
 * Kubernetes pod or a Compose network (HOST=0.0.0.0) Prometheus scrapes the pod's or container's
 * address, and only the public port is in the Service or published; on loopback in development.
 */
function parseMetricsListener ({ get, fail }: Reader, publicListener: { host?: string, port?: number }): { port: number, host: string } | undefined {
  const portValue = get('METRICS_PORT')
  const hostValue = get('METRICS_HOST')
  if (portValue === undefined) {
    if (hostValue !== undefined) fail('METRICS_HOST', 'is set without METRICS_PORT; set METRICS_PORT too (e.g. 9464), or remove METRICS_HOST')
    return undefined
  }
  const port = parseIntIn(portValue, 0, 65535)
  if (port === undefined) return fail('METRICS_PORT', 'must be an integer from 0 to 65535, e.g. 9464')
  if (port !== 0 && port === publicListener.port) return fail('METRICS_PORT', `must differ from PORT (${port}): the metrics listener is kept off the public port`)
  const host = hostValue ?? publicListener.host
  return host === undefined ? undefined : { port, host }
}
