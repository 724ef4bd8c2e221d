// A bare Fastify app around one Sessions instance, for the unit tests of src/session/: sessions are
// started, ended and checked through real requests (cookies, secure-session) without a whole gateway.
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Sessions } from '../../src/session/index.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { SessionRepository } from '../../src/db/sessions.js'

/** A migrated in-memory SQLite database's users and session records, closed when `t` ends. */
export async function memorySessionStore (t: Test): Promise<{ users: UserRepository, records: SessionRepository }> {
  const db = openDatabase('sqlite::memory:')
  t.teardown(db.close)
  await migrateToLatest(db)
  return { users: new UserRepository(db), records: new SessionRepository(db) }
}

/**
 * Routes: `POST /start/:username` starts a local session (the user created on the way), `POST /logout`
 * ends the request's session as the gateway's logout does (an unverifiable one included), `GET /check`
 * answers Sessions.check as JSON. Ready when returned; the caller closes it.
 */
export async function sessionTestApp (sessions: Sessions, users: UserRepository): Promise<FastifyInstance> {
  const app = Fastify()
  await sessions.register(app)
  app.post<{ Params: { username: string } }>('/start/:username', async (request) => {
    const { user } = await users.create({ username: request.params.username })
    await sessions.start(request, user, 'local')
    return 'started'
  })
  app.post('/logout', async (request) => {
    const checked = sessions.check(request)
    await sessions.end(request, 'session' in checked ? checked.session : undefined)
    return 'ended'
  })
  app.get('/check', async (request) => sessions.check(request))
  await app.ready()
  return app
}

/** Starts a session for `username` on a sessionTestApp; its session cookie's value. */
export async function startTestSession (app: FastifyInstance, username: string): Promise<string> {
  const response = await app.inject({ method: 'POST', url: `/start/${username}` })
  return response.cookies.find((c) => c.name === 'authgate')!.value
}
