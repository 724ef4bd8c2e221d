// A readiness check that never answers (a database query stuck behind a dead connection) must not
// hang /_authgate/readyz: after 2 s it is reported as failed and the gateway as not ready. The
// deadline is an AbortSignal (src/net/until-aborted.ts), which must leave nothing attached behind.
import t from 'tap'
import { getEventListeners } from 'node:events'
import Fastify from 'fastify'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { SessionRepository } from '../../src/db/sessions.js'
import { RevocationList } from '../../src/session/revocations.js'
import { Metrics } from '../../src/ops/metrics.js'
import { opsRoutes, type ReadinessCheck } from '../../src/ops/routes.js'
import { untilAborted } from '../../src/net/until-aborted.js'

// AbortSignal.timeout's timer is unref'd: in the gateway its listeners keep the process alive; here,
// with nothing else pending, the process would end before the deadline.
const keepAlive = setInterval(() => {}, 1000)
t.teardown(() => { clearInterval(keepAlive) })

t.test('untilAborted: the outcome, or the signal\'s reason, and no listener left either way', async (t) => {
  const answered = new AbortController()
  t.equal(await untilAborted(Promise.resolve('ok'), answered.signal), 'ok')
  t.same(getEventListeners(answered.signal, 'abort'), [], 'listener removed after an answer')

  const failed = new AbortController()
  await t.rejects(untilAborted(Promise.reject(new Error('boom')), failed.signal), { message: 'boom' }, 'the work\'s own error')
  t.same(getEventListeners(failed.signal, 'abort'), [], 'listener removed after a failure')

  const deadline = AbortSignal.timeout(50)
  const started = Date.now()
  await t.rejects(untilAborted(new Promise(() => {}), deadline), { name: 'TimeoutError' }, 'the deadline')
  t.ok(Date.now() - started >= 45 && Date.now() - started < 1000, 'at the deadline')
  t.same(getEventListeners(deadline, 'abort'), [], 'listener removed after the deadline')

  const already = AbortSignal.abort(new Error('gone'))
  await t.rejects(untilAborted(Promise.resolve('late'), already), { message: 'gone' }, 'an aborted signal wins at once')
})

t.test('readyz reports a check that does not answer within 2 s, and answers itself', async (t) => {
  const db = openDatabase('sqlite::memory:')
  t.teardown(async () => { await db.close() })
  await migrateToLatest(db)
  const app = Fastify({ logger: false })
  t.teardown(async () => { await app.close() })
  const revocations = new RevocationList(new UserRepository(db), new SessionRepository(db), app.log)
  await revocations.refresh()
  const never = new Promise<undefined>(() => {})
  const checks: ReadinessCheck[] = [
    { name: 'stuck', check: async () => await never },
    { name: 'optional-stuck', check: async () => await never, required: false },
    { name: 'quick', check: async () => undefined }
  ]
  await opsRoutes(app, { db, metrics: new Metrics(), revocations, readinessChecks: checks, separateListener: false })

  const started = Date.now()
  const res = await app.inject({ method: 'GET', url: '/_authgate/readyz' })
  const elapsed = Date.now() - started
  t.equal(res.statusCode, 503, 'not ready')
  t.same(res.json(), {
    status: 'not ready',
    checks: { database: 'ok', revocations: 'ok', stuck: 'failed: no answer within 2000ms', 'optional-stuck': 'failed: no answer within 2000ms', quick: 'ok' }
  })
  t.ok(elapsed >= 3900 && elapsed < 6000, `two stuck checks, 2 s each (${elapsed} ms)`)

  checks.splice(0, 1)
  const optional = await app.inject({ method: 'GET', url: '/_authgate/readyz' })
  t.equal(optional.statusCode, 200, 'a stuck check that is not required leaves the gateway ready')
  t.equal(optional.json().checks['optional-stuck'], 'failed: no answer within 2000ms')
})
