// Health, readiness and metrics. On the public port: /_authgate/healthz and /_authgate/readyz for
// orchestrators, and /_authgate/metrics unless METRICS_PORT is set. With METRICS_PORT, a listener of
// its own serves /metrics, /readyz and /healthz, and the public readyz says ready or not without the
// reasons (they name the database's and the IdP's addresses and errors).
//
// The database failing makes the `database` check fail with the reason, but not the gateway unready
// by itself: signed-in users are still served on the cached revocation list, and taking every replica
// out of its load balancer at once would turn a database restart into an outage for all of them.
// Once the list is older than REVOCATION_MAX_STALENESS sessions are refused, and the `revocations`
// check makes the gateway not ready.
import { sql } from 'kysely'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify'
import type { Db } from '../db/index.js'
import type { RevocationList } from '../session/revocations.js'
import type { Metrics } from './metrics.js'
import { untilAborted } from '../net/until-aborted.js'
import { lazySchemaCompilers } from '../schema-compilers.js'

export interface ReadinessCheck {
  name: string
  check: () => Promise<string | undefined>
  /**
   * false: a problem is reported but the gateway stays ready (it can still serve without it); a
   * function: asked when there is a problem.
   */
  required?: boolean | (() => boolean)
}

export interface OpsDeps {
  db: Db
  metrics: Metrics
  revocations: RevocationList
  /** More readiness checks (the OIDC provider's discovery, for one). */
  readinessChecks?: ReadinessCheck[]
  /** METRICS_PORT is set: metrics and the readiness reasons are served on that listener only. */
  separateListener: boolean
}

export const opsRoutes: FastifyPluginAsync<OpsDeps> = async (app, deps) => {
  app.get('/_authgate/healthz', async (_request, reply) => await reply.header('cache-control', 'no-store').send({ status: 'ok' }))

  app.get('/_authgate/readyz', async (_request, reply) => {
    const { ready, checks } = await readiness(deps)
    const body = deps.separateListener ? { status: ready ? 'ready' : 'not ready' } : { status: ready ? 'ready' : 'not ready', checks }
    return await reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send(body)
  })

  // Otherwise the catch-all /_authgate/* answers 404.
  if (!deps.separateListener) app.get('/_authgate/metrics', async (_request, reply) => await sendMetrics(deps.metrics, reply))
}

/** The METRICS_PORT listener: its own server, never reachable through the public port. */
export function metricsListener (deps: OpsDeps, logger: FastifyBaseLogger | undefined): FastifyInstance {
  const app = Fastify({
    ...(logger !== undefined ? { loggerInstance: logger.child({ listener: 'metrics' }) } : { logger: false }),
    // A scrape every 15 s is not worth an access line.
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: lazySchemaCompilers
  })
  app.get('/metrics', async (_request, reply) => await sendMetrics(deps.metrics, reply))
  app.get('/healthz', async (_request, reply) => await reply.header('cache-control', 'no-store').send({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const { ready, checks } = await readiness(deps)
    return await reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send({ status: ready ? 'ready' : 'not ready', checks })
  })
  return app
}

async function sendMetrics (metrics: Metrics, reply: FastifyReply): Promise<FastifyReply> {
  return await reply.type(metrics.contentType).header('cache-control', 'no-store').send(await metrics.render())
}

async function readiness (deps: OpsDeps): Promise<{ ready: boolean, checks: Record<string, string> }> {
  const checks: ReadinessCheck[] = [
    {
      name: 'database',
      check: async () => {
        await sql`select 1`.execute(deps.db.kysely)
        return undefined
      },
      required: false
    },
    {
      name: 'revocations',
      check: async () => {
        const { revocations } = deps
        const age = Math.round(revocations.ageMs / 1000)
        const max = revocations.maxStalenessSeconds
        if (revocations.stale) return `revocation list not refreshed for ${age}s, more than REVOCATION_MAX_STALENESS (${max}s): signed-in users are refused (503) until the database answers`
        if (revocations.refreshFailing || revocations.ageMs > 60_000) return `revocation list not refreshed for ${age}s: signed-in users are served on it until it is ${max}s old`
        return undefined
      },
      required: () => deps.revocations.stale
    },
    ...(deps.readinessChecks ?? [])
  ]
  const results: Record<string, string> = {}
  let ready = true
  for (const { name, check, required } of checks) {
    try {
      const problem = await withTimeout(check(), 2000)
      results[name] = problem ?? 'ok'
      if (problem !== undefined && isRequired(required)) ready = false
    } catch (err) {
      results[name] = `failed: ${(err as Error).message}`
      if (isRequired(required)) ready = false
    }
  }
  return { ready, checks: results }
}

const isRequired = (required: ReadinessCheck['required']): boolean => typeof required === 'function' ? required() : required !== false

/** A check that has not answered within `ms` fails as such; the check itself (a query) runs on. */
async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  const deadline = AbortSignal.timeout(ms)
  try {
    return await untilAborted(promise, deadline)
  } catch (err) {
    throw err === deadline.reason ? new Error(`no answer within ${ms}ms`) : err
  }
}
