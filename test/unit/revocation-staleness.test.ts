// REVOCATION_MAX_STALENESS as loadConfig reads it, and what a revocation list older than it does to
// a session: one the list says is over stays over; one it would accept is `unverifiable` (refused
// for now, not ended: logout still gets it, to end it). The bound is measured on a monotonic clock.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { loadConfig, type Env } from '../../src/config/index.js'
import { describeConfig } from '../../src/config/describe.js'
import { RevocationList } from '../../src/session/revocations.js'
import { Sessions, type SessionCheck } from '../../src/session/index.js'
import { configProblems } from '../support/config.js'
import { TestClock } from '../support/clock.js'
import { memorySessionStore, sessionTestApp, startTestSession } from '../support/session-app.js'

const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const cwd = mkdtempSync(join(tmpdir(), 'authgate-staleness-'))
const load = (env: Env): ReturnType<typeof loadConfig> => loadConfig(env, { cwd, dotenv: false })

t.test('REVOCATION_MAX_STALENESS: seconds, 300 by default, 15 to a day', async (t) => {
  t.equal(load(secrets).revocationMaxStaleness, 300)
  t.equal(load({ ...secrets, REVOCATION_MAX_STALENESS: '15' }).revocationMaxStaleness, 15, 'three missed refreshes at least')
  t.equal(load({ ...secrets, REVOCATION_MAX_STALENESS: '86400' }).revocationMaxStaleness, 86400)
  for (const bad of ['0', '14', '86401', '-1', '1.5', '5m', '']) {
    t.same(configProblems({ ...secrets, REVOCATION_MAX_STALENESS: bad }, cwd), bad === '' ? [] : ['REVOCATION_MAX_STALENESS'], JSON.stringify(bad))
  }
  t.same(load({ ...secrets, REVOCATION_MAX_STALNESS: '60' }).unknownVariables, [{ name: 'REVOCATION_MAX_STALNESS', didYouMean: 'REVOCATION_MAX_STALENESS' }], 'a typo is caught')
  const env = { ...secrets, REVOCATION_MAX_STALENESS: '120' }
  const line = describeConfig(load(env), env, env).find((s) => s.name === 'REVOCATION_MAX_STALENESS')
  t.match(line, { value: '120', source: 'environment' }, 'authgate config check shows it')
})

t.test('a stale list: sessions it would accept are unverifiable, those it refuses stay refused', async (t) => {
  const { users, records } = await memorySessionStore(t)
  const clock = TestClock.atWholeSecond()
  const log = pino({ level: 'silent' })
  // Refreshed by hand (the timer is never started); one stale after 50 ms, one not for a minute.
  const fresh = new RevocationList(users, records, log, 60_000, clock, undefined, 60_000)
  const soonStale = new RevocationList(users, records, log, 60_000, clock, undefined, 50)
  await fresh.refresh()
  await soonStale.refresh()
  await sleep(100)
  t.notOk(fresh.stale, 'within its bound')
  t.ok(soonStale.stale, 'past its bound')
  t.ok(soonStale.ageMs > 50, 'the age is real time since the read, whatever the test clock says')

  const gateways = await Promise.all([fresh, soonStale].map(async (revocations) => {
    const sessions = new Sessions({ secretKeys: ['s'.repeat(40)], deploymentId: 'd'.repeat(43), secure: false, maxAge: 3600 }, { revocations, records, clock })
    const app = await sessionTestApp(sessions, users)
    t.teardown(async () => { await app.close() })
    return app
  }))
  const [a, b] = gateways as [typeof gateways[0], typeof gateways[0]]
  const cookie = await startTestSession(a, 'alice')
  const check = async (app: typeof a): Promise<SessionCheck> => (await app.inject({ url: '/check', cookies: { authgate: cookie } })).json()

  t.match(await check(a), { ok: true }, 'a fresh list accepts the session')
  const stale = await check(b)
  t.match(stale, { ok: false, reason: 'unverifiable', session: { u: 'alice' } }, 'a stale one cannot vouch for it, and says whose it is')

  // Logout through the stale one still ends it, for everyone reading the database.
  await b.inject({ method: 'POST', url: '/logout', cookies: { authgate: cookie } })
  t.match(await check(b), { ok: false, reason: 'ended' }, 'ended beats unverifiable: what the list knows stands')
  await fresh.refresh()
  t.match(await check(a), { ok: false, reason: 'ended' }, 'and the record was ended: the other list learns it')
})
