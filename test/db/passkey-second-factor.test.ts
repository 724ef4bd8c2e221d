// The passkey second factor as the second-step routes will use it (src/auth/passkeys/second-factor.ts):
// in a Fastify app of its own over a real SQLite database, answered by a software authenticator.
// Options for the user's passkeys only; user verification preferred (presence enough); another
// user's passkey refused; a challenge used once; nothing at an address without a relying party.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { UserRepository } from '../../src/db/users.js'
import { PasskeyRepository } from '../../src/db/passkeys.js'
import { PasskeyCeremonies } from '../../src/auth/passkeys/ceremonies.js'
import { passkeySecondFactor } from '../../src/auth/passkeys/second-factor.js'
import { Metrics } from '../../src/ops/metrics.js'
import { systemClock } from '../../src/clock.js'
import { SoftAuthenticator } from '../support/soft-authenticator.js'

const dir = mkdtempSync(join(tmpdir(), 'authgate-passkey-2fa-'))
const db = openDatabase(`sqlite:${join(dir, 'authgate.db')}`)
t.teardown(async () => { await db.close(); rmSync(dir, { recursive: true, force: true }) })
await migrateToLatest(db)
const users = new UserRepository(db)
const alice = (await users.create({ username: 'alice', passwordHash: 'x' })).user
const bob = (await users.create({ username: 'bob', passwordHash: 'x' })).user
const passkeys = new PasskeyRepository(db)
const metrics = new Metrics()
const config = { appName: 'TT', localMfa: 'optional', localAuth: 'password', authMethod: 'local', publicUrl: undefined, production: false } as const
const secondFactor = passkeySecondFactor({ config, passkeys, clock: systemClock, metrics })

const app = Fastify()
app.post<{ Body: { userId: number } }>('/options', async (request, reply) => await reply.send((await secondFactor.options(request, request.body.userId)) ?? { none: true }))
app.post<{ Body: { userId: number, response: unknown } }>('/verify', async (request) => {
  const user = (await users.findById(request.body.userId))!
  const result = await secondFactor.verify(request, user, request.body.response)
  return result.ok ? { ok: true, name: result.value.name } : { ok: false, reason: result.reason }
})
t.teardown(async () => { await app.close() })
const post = async (path: string, body: unknown, host = 'localhost:8080'): Promise<any> => (await app.inject({ method: 'POST', url: path, headers: { host }, payload: body as object })).json()

// Alice's passkey, registered through the ceremony (second factor only).
const authenticator = new SoftAuthenticator('http://localhost:8080')
const rp = { id: 'localhost', origin: 'http://localhost:8080' }
const ceremonies = new PasskeyCeremonies(passkeys, systemClock, 'TT')
const { answer, credential } = authenticator.register(await ceremonies.registrationOptions(rp, alice, false), { uv: false })
t.ok((await ceremonies.register(rp, alice.id, answer, 'Key')).ok, 'registered without user verification: a second factor')

t.test('options and verification for one user', async (t) => {
  t.same(await post('/options', { userId: bob.id }), { none: true }, 'bob has no passkeys: no options')
  t.same(await post('/options', { userId: alice.id }, '127.0.0.1:8080'), { none: true }, 'no relying party at an IP address: no options')
  const options = await post('/options', { userId: alice.id })
  t.equal(options.userVerification, 'preferred')
  t.same(options.allowCredentials.map((c: { id: string }) => c.id), [credential.id])
  const response = authenticator.assert(credential, options, { uv: false })
  t.same(await post('/verify', { userId: bob.id, response }), { ok: false, reason: 'wrong-user' }, 'alice\'s passkey for bob: refused')
  t.same(await post('/verify', { userId: alice.id, response }), { ok: true, name: 'Key' }, 'presence is enough after a password')
  t.same(await post('/verify', { userId: alice.id, response }), { ok: false, reason: 'challenge' }, 'the same answer twice: refused')
  t.same(await post('/verify', { userId: alice.id, response: { nonsense: true } }), { ok: false, reason: 'malformed' })
  t.same(await post('/verify', { userId: alice.id, response }, '127.0.0.1:8080'), { ok: false, reason: 'origin' }, 'no relying party at this address')
  t.match(await metrics.render(), /authgate_passkey_events_total\{event="second-factor"\} 1/)
})
