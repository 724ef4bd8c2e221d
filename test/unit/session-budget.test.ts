import t from 'tap'
import Fastify from 'fastify'
import { estimateSessionCookieSize, fitSessionPayload, identityFitsSession, SessionTooLargeError, SESSION_COOKIE_BUDGET } from '../../src/session/budget.js'
import { newSessionId, newSessionPayload } from '../../src/session/session.js'
import { Sessions } from '../../src/session/index.js'
import type { RevocationList } from '../../src/session/revocations.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { SessionRepository } from '../../src/db/sessions.js'

const user = { id: 7, username: 'alice', isAdmin: false, email: 'alice@example.test', fullName: 'Alice', groups: ['a', 'b'] }
const payload = (groups: string[], idToken?: string) => newSessionPayload(newSessionId(), { ...user, groups }, 'oidc', 3600, 1_700_000_000, idToken !== undefined ? { idToken } : {})

t.test('small payloads are left alone', async (t) => {
  const p = payload(['a', 'b'], 'x.y.z')
  t.same(fitSessionPayload('authgate', p), { fits: true, payload: p, droppedIdToken: false })
})

t.test('the ID token is left out to fit; the groups never are', async (t) => {
  const bigToken = 'e'.repeat(2500)
  const fitted = fitSessionPayload('authgate', payload(['a', 'b'], bigToken))
  t.match(fitted, { fits: true, droppedIdToken: true })
  if (fitted.fits) {
    t.equal(fitted.payload.idt, undefined)
    t.same(fitted.payload.g, ['a', 'b'])
  }

  const groups = Array.from({ length: 500 }, (_, i) => `group-${i}`)
  const many = fitSessionPayload('__Host-authgate', payload(groups, bigToken))
  t.match(many, { fits: false, groups: 500, budget: SESSION_COOKIE_BUDGET }, 'refused, not cut')
  t.ok(!many.fits && many.bytes > SESSION_COOKIE_BUDGET)
})

t.test('at the boundary: the last group that fits, and one more', async (t) => {
  const group = (i: number): string => `group-${String(i).padStart(4, '0')}`
  // The largest list that fits, found by growing it one group at a time.
  let n = 0
  while (estimateSessionCookieSize('__Host-authgate', payload(Array.from({ length: n + 1 }, (_, i) => group(i)))) <= SESSION_COOKIE_BUDGET) n++
  const fitting = Array.from({ length: n }, (_, i) => group(i))
  t.ok(n > 100, `${n} groups fit`)
  t.match(fitSessionPayload('__Host-authgate', payload(fitting, 'big.' + 'x'.repeat(3000) + '.token')), { fits: true, droppedIdToken: true, payload: { g: fitting } }, 'all of them kept')
  t.match(fitSessionPayload('__Host-authgate', payload([...fitting, group(n)])), { fits: false, groups: n + 1 }, 'one more refuses the session')
})

t.test('identityFitsSession: the same answer before the user row exists', async (t) => {
  const identity = (groups: string[]) => ({ username: 'alice', email: 'alice@example.test', fullName: 'Alice', groups })
  t.match(identityFitsSession('authgate', identity(['a'])), { fits: true })
  t.match(identityFitsSession('authgate', identity(Array.from({ length: 300 }, (_, i) => `group-${i}`))), { fits: false, groups: 300 })
  // Its estimate is the largest a real session of that identity can be (largest id and timestamps).
  const groups = Array.from({ length: 120 }, (_, i) => `g-${i}`)
  const probe = identityFitsSession('authgate', identity(groups), 100_000)
  const real = newSessionPayload(newSessionId(), { ...user, ...identity(groups) }, 'oidc', 86400, Math.floor(Date.now() / 1000))
  t.ok(probe.fits && estimateSessionCookieSize('authgate', probe.payload) >= estimateSessionCookieSize('authgate', real))
})

t.test('Sessions.start throws rather than cutting groups', async (t) => {
  const app = Fastify()
  const db = openDatabase('sqlite::memory:')
  t.teardown(db.close)
  await migrateToLatest(db)
  const sessions = new Sessions({ secretKeys: ['s'.repeat(40)], deploymentId: 'd'.repeat(43), secure: true, maxAge: 3600 }, { revocations: { cutoffFor: () => undefined } as unknown as RevocationList, records: new SessionRepository(db) })
  await sessions.register(app)
  app.get('/', async (request) => {
    try {
      await sessions.start(request, { ...user, groups: Array.from({ length: 600 }, (_, i) => `group-${i}`) }, 'oidc')
      return 'started'
    } catch (err) {
      return err instanceof SessionTooLargeError ? `refused: ${err.message}` : 'other error'
    }
  })
  const response = await app.inject('/')
  t.match(response.body, /^refused: .*600 groups/)
  t.notOk(([] as string[]).concat(response.headers['set-cookie'] ?? []).some((c) => c.startsWith('__Host-authgate=')), 'no session cookie')
  await app.close()
})

t.test('the estimate bounds the real cookie, multi-byte characters included', async (t) => {
  const app = Fastify()
  const db = openDatabase('sqlite::memory:')
  t.teardown(db.close)
  await migrateToLatest(db)
  const { user: stored } = await new UserRepository(db).create({ username: user.username })
  const sessions = new Sessions({ secretKeys: ['s'.repeat(40)], deploymentId: 'd'.repeat(43), secure: true, maxAge: 3600 }, { revocations: { cutoffFor: () => undefined } as unknown as RevocationList, records: new SessionRepository(db) })
  await sessions.register(app)
  let groups: string[] = []
  const named = (count: number): string[] => Array.from({ length: count }, (_, i) => `Gruppe-ä-${i}`)
  app.get('/', async (request) => { await sessions.start(request, { ...user, id: stored.id, fullName: 'Ämmälä 日本', groups }, 'oidc', { idToken: 'h.' + 'p'.repeat(1500) + '.s' }); return 'ok' })
  // Up to the largest list that fits, where the estimate's margin matters most.
  let largest = 0
  while (fitSessionPayload('__Host-authgate', newSessionPayload(newSessionId(), { ...user, fullName: 'Ämmälä 日本', groups: named(largest + 1) }, 'oidc', 3600, Math.floor(Date.now() / 1000))).fits) largest++
  for (const count of [0, 50, largest]) {
    groups = named(count)
    for (let i = 0; i < 10; i++) {
      const response = await app.inject('/')
      const cookie = ([] as string[]).concat(response.headers['set-cookie'] ?? []).find((c) => c.startsWith('__Host-authgate='))!
      const nameValue = cookie.split(';', 1)[0]!
      t.ok(nameValue.length <= SESSION_COOKIE_BUDGET, `${count} groups: ${nameValue.length} bytes`)
      t.ok(cookie.length < 4096)
    }
  }
  await app.close()
})
