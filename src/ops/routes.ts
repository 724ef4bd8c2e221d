// /_authgate/*: health for orchestrators, readiness with reasons, metrics.
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import type { Db } from '../db/index.js'
import type { RevocationList } from '../session/revocations.js'
import type { Metrics } from './metrics.js'

export interface ReadinessCheck {
  name: string
  check: () => Promise<string | undefined>
  /** false: a problem is reported but the gateway stays ready (it can still serve without it). */
  required?: boolean
}

export interface OpsDeps {
  db: Db
  metrics: Metrics
  revocations: RevocationList
  /** More readiness checks (the OIDC provider's discovery, for one). */
  readinessChecks?: ReadinessCheck[]
}

export async function opsRoutes (app: FastifyInstance, deps: OpsDeps): Promise<void> {
  app.get('/_authgate/healthz', async (_request, reply) => await reply.header('cache-control', 'no-store').send({ status: 'ok' }))

  app.get('/_authgate/readyz', async (_request, reply) => {
    const checks: ReadinessCheck[] = [
      {
        name: 'database',
        check: async () => {
          await sql`select 1`.execute(deps.db.kysely)
          return undefined
        }
      },
      {
        name: 'revocations',
        check: async () => deps.revocations.ageMs > 60_000 ? `revocation list not refreshed for ${Math.round(deps.revocations.ageMs / 1000)}s` : undefined
      },
      ...(deps.readinessChecks ?? [])
    ]
    const results: Record<string, string> = {}
    let ready = true
    for (const { name, check, required } of checks) {
      try {
        const problem = await withTimeout(check(), 2000)
        results[name] = problem ?? 'ok'
        if (problem !== undefined && required !== false) ready = false
      } catch (err) {
        results[name] = `failed: ${(err as Error).message}`
        if (required !== false) ready = false
      }
    }
    return await reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send({ status: ready ? 'ready' : 'not ready', checks: results })
  })

  app.get('/_authgate/metrics', async (_request, reply) =>
    await reply.type('text/plain; version=0.0.4').header('cache-control', 'no-store').send(deps.metrics.render()))
}

async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no answer within ${ms}ms`)) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
