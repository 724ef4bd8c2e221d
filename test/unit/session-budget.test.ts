import t from 'tap'
import Fastify from 'fastify'
import { estimateSessionCookieSize, fitSessionPayload, SESSION_COOKIE_BUDGET } from '../../src/session/budget.js'
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
  t.same(fitSessionPayload('authgate', p), { payload: p, droppedIdToken: false, droppedGroups: 0 })
})

t.test('the ID token goes first, then groups from the end', async (t) => {
  const bigToken = 'e'.repeat(2500)
  const fitted = fitSessionPayload('authgate', payload(['a', 'b'], bigToken))
  t.equal(fitted.payload.idt, undefined)
  t.same(fitted.payload.g, ['a', 'b'])
  t.equal(fitted.droppedIdToken, true)
  t.equal(fitted.droppedGroups, 0)

  const groups = Array.from({ length: 500 }, (_, i) => `group-${i}`)
  const many = fitSessionPayload('__Host-authgate', payload(groups, bigToken))
  t.equal(many.droppedIdToken, true)
  t.ok(many.droppedGroups > 0)
  t.same(many.payload.g, groups.slice(0, groups.length - many.droppedGroups), 'a prefix, in order')
  t.ok(estimateSessionCookieSize('__Host-authgate', many.payload) <= SESSION_COOKIE_BUDGET)
  t.notOk(estimateSessionCookieSize('__Host-authgate', { ...many.payload, g: groups.slice(0, many.payload.g.length + 1) }) <= SESSION_COOKIE_BUDGET, 'as many as fit')
})

t.test('the estimate bounds the real cookie, multi-byte characters included', async (t) => {
  const app = Fastify()
  const db = openDatabase('sqlite::memory:')
  t.teardown(db.close)
  await migrateToLatest(db)
  const { user: stored } = await new UserRepository(db).create({ username: user.username })
  const sessions = new Sessions({ secretKeys: ['s'.repeat(40)], deploymentId: 'd'.repeat(43), secure: true, maxAge: 3600 }, { cutoffFor: () => undefined } as unknown as RevocationList, new SessionRepository(db))
  await sessions.register(app)
  let groups: string[] = []
  app.get('/', async (request) => { await sessions.start(request, { ...user, id: stored.id, fullName: 'Ämmälä 日本', groups }, 'oidc', { idToken: 'h.' + 'p'.repeat(1500) + '.s' }); return 'ok' })
  for (const count of [0, 50, 150, 400]) {
    groups = Array.from({ length: count }, (_, i) => `Gruppe-ä-${i}`)
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
