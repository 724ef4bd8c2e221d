// `authgate users mfa-reset <username>` as a real process on the database of a running gateway: the
// user's second factors go (authenticator, recovery codes, passkeys), their sessions end on the gateway, the
// password alone signs in again, and the reset is an audit event. Usage mistakes exit 2, nothing done.
import t from 'tap'
import { resolve } from 'node:path'
import { startGateway } from './support/gateway.js'
import { startUpstream } from './support/upstream.js'
import { TestClock } from './support/clock.js'
import { runNode, type ProcessResult } from './support/process.js'
import { addUser, Browser, enrol, PASSWORD } from './support/second-factor.js'
import { SoftAuthenticator } from './support/soft-authenticator.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from './support/http.js'

const BIN = resolve('src/cli/bin.ts')
const upstream = await startUpstream()
t.teardown(upstream.close)

t.test('mfa-reset removes the second factors and ends the sessions', async (t) => {
  const clock = TestClock.atWholeSecond()
  // A file both the gateway and the CLI open (TEST_DATABASE=postgres or not: the CLI needs a URL).
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional', DATABASE_URL: 'sqlite:./authgate.db' }, { upstream: upstream.url, clock, revocationRefreshMs: 100 })
  t.teardown(gw.close)
  const cli = async (...args: string[]): Promise<ProcessResult> =>
    await runNode(BIN, args, { cwd: gw.dir, env: { PATH: process.env.PATH ?? '', DATABASE_URL: 'sqlite:./authgate.db' } })

  await addUser(gw, 'alice')
  await addUser(gw, 'bob')
  const { browser } = await enrol(t, gw, clock, 'alice')
  t.equal((await browser.get('/x', { accept: 'application/json' })).status, 200, 'signed in')
  t.equal((await new Browser(gw.url).signIn('alice')).status, 200, 'the password alone answers the second step')

  const help = await cli('users', '--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /mfa-reset <username>/)
  t.match((await cli('--help')).stdout, /mfa-reset/)
  const missing = await cli('users', 'mfa-reset')
  t.equal(missing.code, 2)
  t.match(missing.stderr, /missing <username>/)
  const unknown = await cli('users', 'mfa-reset', 'nobody')
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /no such user: nobody/)
  t.notMatch(unknown.stderr, /^\s+at /m, 'no stack trace')
  const extra = await cli('users', 'mfa-reset', 'alice', 'bob')
  t.equal(extra.code, 2)
  t.equal((await gw.db.kysely.selectFrom('user_totp').selectAll().execute()).length, 1, 'nothing removed by a refused command')

  const reset = await cli('users', 'mfa-reset', 'alice')
  t.equal(reset.code, 0, reset.stderr)
  t.match(reset.stdout, /second factors of alice removed/)
  const events = reset.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.same(events.map(({ audit, user, by, reason }) => ({ audit, user, by, reason })), [
    { audit: 'second-factors-reset', user: 'alice', by: 'cli', reason: 'requested' },
    { audit: 'sessions-revoked', user: 'alice', by: 'cli', reason: 'mfa-reset' }
  ])
  t.equal((await gw.db.kysely.selectFrom('user_totp').selectAll().execute()).length, 0)
  t.equal((await gw.db.kysely.selectFrom('recovery_codes').selectAll().execute()).length, 0)

  // The gateway learns of the revocation at its next refresh (100 ms here).
  let status = 0
  for (let i = 0; i < 50 && status !== 401; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = (await browser.get('/x', { accept: 'application/json' })).status
  }
  t.equal(status, 401, 'the session ended')
  // A new second of the gateway's clock: sessions from the revocation's own second are refused.
  clock.advance(2000)
  const again = await new Browser(gw.url).signIn('alice')
  t.equal(again.status, 303, 'the password alone signs in again (to enrol anew)')

  const none = await cli('users', 'mfa-reset', 'bob')
  t.equal(none.code, 0)
  t.match(none.stdout, /bob had no second factor/)
})

t.test('mfa-reset removes the user\'s passkeys too (a passkey is a second factor)', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional', DATABASE_URL: 'sqlite:./authgate.db' }, { upstream: upstream.url, revocationRefreshMs: 100 })
  t.teardown(gw.close)
  const cli = async (...args: string[]): Promise<ProcessResult> =>
    await runNode(BIN, args, { cwd: gw.dir, env: { PATH: process.env.PATH ?? '', DATABASE_URL: 'sqlite:./authgate.db' } })
  await addUser(gw, 'carol')
  await addUser(gw, 'dan')
  // Passkeys are offered at localhost (no PUBLIC_URL): requests carry that host.
  const host = `localhost:${new URL(gw.url).port}`
  const authenticator = new SoftAuthenticator(`http://${host}`)
  const addPasskey = async (username: string): Promise<void> => {
    let cookies: Record<string, string> = {}
    const send = async (path: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Response> => {
      const res = await http(gw.url + path, { ...init, headers: { host, cookie: cookieHeader(cookies), ...init.headers } })
      cookies = { ...cookies, ...setCookies(res.headers) }
      return res
    }
    const page = await send('/login')
    t.equal((await send('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password: PASSWORD, csrf_token: csrfTokenFrom(page.body), next: '/' }).toString() })).status, 303)
    const csrf = csrfTokenFrom((await send('/_authgate/account/passkeys')).body)
    const json = { 'content-type': 'application/json', accept: 'application/json', 'x-authgate-csrf': csrf }
    const options = JSON.parse((await send('/_authgate/account/passkeys/options', { method: 'POST', headers: json, body: JSON.stringify({ passwordless: true, password: PASSWORD }) })).body)
    const added = await send('/_authgate/account/passkeys', { method: 'POST', headers: json, body: JSON.stringify({ response: authenticator.register(options).answer, name: 'Key' }) })
    t.equal(added.status, 201, `${username}: a passkey added`)
  }
  await addPasskey('carol')
  await addPasskey('dan')
  t.equal((await new Browser(gw.url).signIn('carol')).status, 200, 'the passkey is asked for after the password')

  const reset = await cli('users', 'mfa-reset', 'carol')
  t.equal(reset.code, 0, reset.stderr)
  t.match(reset.stdout, /second factors of carol removed/, 'a user whose only factor is a passkey had one')
  const left = await gw.db.kysely.selectFrom('passkeys').select('user_id').execute()
  const dan = await gw.users.findByUsername('dan')
  t.same(left.map((r) => Number(r.user_id)), [dan?.id], 'carol\'s passkey is gone, dan\'s stays')
  t.equal((await new Browser(gw.url).signIn('carol')).status, 303, 'the password alone signs in again')
})
