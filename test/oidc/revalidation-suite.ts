// SSO sessions that follow the IdP: a real OpenID Provider (node-oidc-provider, issuing and rotating
// refresh tokens) whose accounts the tests change, the real gateway, a real upstream that reports
// what it received. The gateway's clock is moved past OIDC_REFRESH_INTERVAL instead of sleeping.
// One suite, run on SQLite (revalidation.test.ts) and on PostgreSQL (revalidation-postgres.test.ts).
import t from 'tap'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startOidcProvider, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream, type TestUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, identityAtUpstream, ssoLogin, startSsoGateway } from '../support/sso.js'
import { SECRET_KEY, type TestGateway } from '../support/gateway.js'
import { TestClock } from '../support/clock.js'
import { logCapture } from '../support/log-capture.js'
import { parseMetrics } from '../support/metrics.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { within } from '../support/within.js'
import { once } from 'node:events'
import WebSocket from 'ws'
import type { Db } from '../../src/db/index.js'
import { readDeploymentId } from '../../src/db/sessions.js'
import { RefreshTokenCipher } from '../../src/session/refresh-token-cipher.js'

/** A fresh database of the dialect under test, and how to get rid of it. */
export type OpenTestDatabase = () => Promise<{ db: Db, close: () => Promise<void> }>

export async function revalidationSuite (openTestDatabase: OpenTestDatabase): Promise<void> {
  /** A gateway on a fresh database of its own (or on `db`), closed with the test file. */
  async function gatewayOn (issuer: string, env: Record<string, string>, upstreamUrl: string, options: Parameters<typeof startSsoGateway>[3] = {}): Promise<TestGateway> {
    if (options.db !== undefined) return await startSsoGateway(issuer, env, upstreamUrl, options)
    const { db, close } = await openTestDatabase()
    const gateway = await startSsoGateway(issuer, env, upstreamUrl, { ...options, db })
    return { ...gateway, close: async () => { await gateway.close(); await close() } }
  }

  const clients = [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }]
  const account = (name: string, groups: string[]): Record<string, unknown> => ({ preferred_username: name, name: `${name} Example`, email: `${name}@example.test`, email_verified: true, groups })

  const upstream = await startUpstream()
  const op = await startOidcProvider({
    clients,
    refreshTokens: true,
    accounts: {
      alice: account('alice', ['staff', 'admins']),
      bob: account('bob', ['staff']),
      carol: account('carol', ['staff']),
      dave: account('dave', ['staff']),
      erin: account('erin', ['staff'])
    },
    endSession: false,
    password: 'pw'
  })
  const clock = new TestClock()
  const logs = logCapture()
  const env = { OIDC_REFRESH_INTERVAL: '1', OIDC_ADMIN_GROUP: 'admins', ADMIN_USERNAMES: '', ALLOWED_GROUPS: 'staff' }
  const gateway = await gatewayOn(op.issuer, env, upstream.url, { clock, logger: logs.logger, revocationRefreshMs: 200 })
  t.teardown(async () => { await gateway.close(); await op.close(); await upstream.close() })

  const tokenCalls = (idp: OidcProviderFixture): number => idp.calls.filter((c) => c.method === 'POST' && c.path === '/token').length

  async function metric (gw: TestGateway, outcome: string): Promise<number> {
    return parseMetrics(await gw.metrics.render()).find((s) => s.name === 'authgate_oidc_revalidations_total' && s.labels['outcome'] === outcome)?.value ?? 0
  }

  /** Poll what the upstream receives until `done` says so (each poll is a request of the session). */
  async function until (gw: TestGateway, jar: CookieJar, up: TestUpstream, done: (id: Awaited<ReturnType<typeof identityAtUpstream>>) => boolean, timeoutMs = 5000): Promise<{ ok: boolean, requests: number }> {
    const deadline = Date.now() + timeoutMs
    let requests = 0
    for (;;) {
      requests++
      // A request under way when its session ends is cut off (open-connections.ts): that is an answer too.
      const identity = await identityAtUpstream(gw, jar, up).catch(() => 'cut' as const)
      if (identity !== 'cut' && done(identity)) return { ok: true, requests }
      if (Date.now() > deadline) return { ok: false, requests }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async function signIn (gw: TestGateway, name: string): Promise<CookieJar> {
    const jar = new CookieJar()
    const answer = await ssoLogin(gw, jar, { login: name, password: 'pw' })
    if (answer.status !== 302) throw new Error(`sign-in of ${name} answered ${answer.status}`)
    return jar
  }

  async function sessionRow (gw: TestGateway, username: string): Promise<{ refresh_token: string | null, ended_at: unknown, id: string }> {
    return await gw.db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id')
      .select(['sessions.id', 'sessions.refresh_token', 'sessions.ended_at']).where('users.username', '=', username)
      .orderBy('sessions.created_at', 'desc').executeTakeFirstOrThrow()
  }

  t.test('a group removed at the IdP reaches the upstream within the interval, without a new sign-in', async (t) => {
    const jar = await signIn(gateway, 'alice')
    t.match(await identityAtUpstream(gateway, jar, upstream), { user: 'alice', admin: 'true', groups: 'staff,admins' }, 'signed in as an admin')
    const calls = tokenCalls(op)

    op.accounts.get('alice')!.groups = ['staff']
    t.match(await identityAtUpstream(gateway, jar, upstream), { admin: 'true' }, 'before the interval: still what the sign-in said')
    t.equal(tokenCalls(op), calls, 'and no refresh was made')

    clock.advance(1000)
    const seen = await until(gateway, jar, upstream, (id) => id?.admin === 'false')
    t.ok(seen.ok, 'the upstream sees X-Admin: false')
    t.ok(seen.requests >= 2, `the request that started the refresh was served with the old identity (${seen.requests} requests)`)
    t.match(await identityAtUpstream(gateway, jar, upstream), { user: 'alice', admin: 'false', groups: 'staff', email: 'alice@example.test', fullName: 'alice Example' })
    t.equal(tokenCalls(op), calls + 1, 'one refresh')
    const user = await gateway.users.findByUsername('alice')
    t.equal(user?.isAdmin, false, 'the user row is updated')
    t.ok(logs.lines().some((l) => l['audit'] === 'admin-revoked' && l['user'] === 'alice' && l['by'] === 'oidc-mapping'), 'audited')

    // Back in the group: granted again at the next interval; the rotated refresh token was stored (the old one is dead).
    op.accounts.get('alice')!.groups = ['staff', 'admins']
    clock.advance(1000)
    t.ok((await until(gateway, jar, upstream, (id) => id?.admin === 'true')).ok, 'admin again after the next refresh, with the rotated token')
    t.equal(await metric(gateway, 'changed'), 2)
  })

  t.test('an account deleted at the IdP (invalid_grant) ends the session', async (t) => {
    const jar = await signIn(gateway, 'bob')
    t.match(await identityAtUpstream(gateway, jar, upstream), { user: 'bob' })
    t.ok((await sessionRow(gateway, 'bob')).refresh_token, 'a refresh token was kept')
    const ended = await metric(gateway, 'ended')
    op.accounts.delete('bob')
    clock.advance(1000)
    const refused = await until(gateway, jar, upstream, (id) => id === undefined)
    t.ok(refused.ok, 'the session no longer gets through')
    const row = await sessionRow(gateway, 'bob')
    t.not(row.ended_at, null, 'its record is ended')
    t.equal(row.refresh_token, null, 'and its refresh token deleted')
    t.equal(await metric(gateway, 'ended'), ended + 1, 'counted')
    t.ok(logs.lines().some((l) => l['audit'] === 'session-ended' && l['user'] === 'bob' && l['reason'] === 'idp-refused'), 'audited as refused by the IdP')
  })

  t.test('the allow-lists are re-applied: out of ALLOWED_GROUPS, the session ends', async (t) => {
    const jar = await signIn(gateway, 'erin')
    t.match(await identityAtUpstream(gateway, jar, upstream), { user: 'erin', groups: 'staff' })
    op.accounts.get('erin')!.groups = ['contractors']
    clock.advance(1000)
    t.ok((await until(gateway, jar, upstream, (id) => id === undefined)).ok, 'the session ends')
    t.ok(logs.lines().some((l) => l['audit'] === 'session-ended' && l['user'] === 'erin' && l['reason'] === 'not-allowed'), 'audited as not allowed')
    t.not((await sessionRow(gateway, 'erin')).ended_at, null)
  })

  t.test('concurrent requests of one session make one refresh', async (t) => {
    const jar = await signIn(gateway, 'carol')
    await identityAtUpstream(gateway, jar, upstream)
    const calls = tokenCalls(op)
    const before = await metric(gateway, 'unchanged')
    clock.advance(1000)
    const answers = await Promise.all(Array.from({ length: 20 }, async () => {
      const response = await fetchWithJar(jar, `${gateway.url}/whoami`, { headers: { accept: 'application/json' } })
      await response.text()
      return response.status
    }))
    t.same(new Set(answers), new Set([200]), 'all served')
    // Let the refresh finish, then some more requests (not due any more).
    const done = Date.now() + 5000
    while (await metric(gateway, 'unchanged') === before && Date.now() < done) await new Promise((resolve) => setTimeout(resolve, 25))
    for (let i = 0; i < 5; i++) await identityAtUpstream(gateway, jar, upstream)
    t.equal(tokenCalls(op), calls + 1, 'one token request for 25 requests')
    t.equal(await metric(gateway, 'unchanged'), before + 1, 'one re-validation')
  })

  t.test('the refresh token is never in the cookie, and is encrypted in the database', async (t) => {
    const jar = await signIn(gateway, 'dave')
    const row = await sessionRow(gateway, 'dave')
    const cipher = new RefreshTokenCipher([SECRET_KEY], await readDeploymentId(gateway.db))
    const token = cipher.decrypt(row.id, row.refresh_token!)
    t.ok(token !== undefined && token.length > 20, 'the stored value decrypts to a token')
    t.notOk(row.refresh_token!.includes(token!), 'the plaintext is not in the row')
    t.match(row.refresh_token, /^v1\.[\w-]+$/, 'only the sealed form is')
    t.notOk(jar.cookieHeader(gateway.url)!.includes(token!), 'nor in the cookie')
    t.equal(new RefreshTokenCipher([SECRET_KEY], await readDeploymentId(gateway.db)).decrypt('another-session-id-xxx', row.refresh_token!), undefined, 'bound to its session: another row cannot use it')
    // It is the real token: the IdP accepts it (a rotation, so this session's own refresh will fail next).
    const grant = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token!, client_id: CLIENT_ID, client_secret: CLIENT_SECRET })
    })
    t.equal(grant.status, 200, 'the IdP accepts the decrypted token')
  })

  t.test('an unreachable IdP keeps sessions working, and is retried at the next interval', async (t) => {
    const idp = await startOidcProvider({ clients, refreshTokens: true, accounts: { frank: account('frank', ['staff', 'admins']) }, endSession: false, password: 'pw' })
    const ownClock = new TestClock()
    const ownLogs = logCapture()
    const gw = await gatewayOn(idp.issuer, env, upstream.url, { clock: ownClock, logger: ownLogs.logger })
    t.teardown(async () => { await gw.close() })
    const jar = await signIn(gw, 'frank')
    await idp.close()
    ownClock.advance(1000)
    t.match(await identityAtUpstream(gw, jar, upstream), { user: 'frank', admin: 'true' }, 'the request that starts the refresh is served')
    const done = Date.now() + 10_000
    while (await metric(gw, 'unavailable') === 0 && Date.now() < done) await new Promise((resolve) => setTimeout(resolve, 25))
    t.equal(await metric(gw, 'unavailable'), 1, 'the refresh failed as unavailable')
    t.match(await identityAtUpstream(gw, jar, upstream), { user: 'frank', admin: 'true' }, 'the session goes on, unchanged')
    t.equal(await metric(gw, 'ended'), 0, 'nothing ended')
    t.ok(ownLogs.lines().some((l) => l['msg'] === 'SSO session re-validation: IdP unreachable; session kept, retrying later'), 'logged')
    ownClock.advance(500)
    await identityAtUpstream(gw, jar, upstream)
    ownClock.advance(600)
    await identityAtUpstream(gw, jar, upstream)
    const again = Date.now() + 10_000
    while (await metric(gw, 'unavailable') < 2 && Date.now() < again) await new Promise((resolve) => setTimeout(resolve, 25))
    t.equal(await metric(gw, 'unavailable'), 2, 'tried again once the interval passed')
    t.ok(await identityAtUpstream(gw, jar, upstream), 'still signed in')
  })

  t.test('after a SECRET_KEY rotation (old key in SECRET_KEY_PREVIOUS) the stored refresh token still works', async (t) => {
    const { db, close } = await openTestDatabase()
    const ownClock = new TestClock()
    t.teardown(close)
    op.accounts.set('grace', account('grace', ['staff', 'admins']))
    const oldKey = 'old-secret-key-0123456789abcdefghijklmnopq'
    const newKey = 'new-secret-key-0123456789abcdefghijklmnopq'
    const before = await gatewayOn(op.issuer, { ...env, SECRET_KEY: oldKey }, upstream.url, { db, clock: ownClock })
    const jar = await signIn(before, 'grace')
    await before.close()
    const after = await gatewayOn(op.issuer, { ...env, SECRET_KEY: newKey, SECRET_KEY_PREVIOUS: oldKey }, upstream.url, { db, clock: ownClock })
    t.teardown(async () => { await after.close() })
    t.match(await identityAtUpstream(after, jar, upstream), { user: 'grace', admin: 'true' }, 'the cookie is still accepted')
    op.accounts.get('grace')!.groups = ['staff']
    ownClock.advance(1000)
    t.ok((await until(after, jar, upstream, (id) => id?.admin === 'false')).ok, 'the refresh token sealed with the previous key was used')
    const row = await sessionRow(after, 'grace')
    const deploymentId = await readDeploymentId(db)
    t.ok(new RefreshTokenCipher([newKey], deploymentId).decrypt(row.id, row.refresh_token!), 'the rotated token is sealed with the new key')
    t.equal(new RefreshTokenCipher([oldKey], deploymentId).decrypt(row.id, row.refresh_token!), undefined, 'not with the old one')
  })

  t.test('from a change at the IdP to the upstream seeing it, in real time (OIDC_REFRESH_INTERVAL=1)', async (t) => {
    op.accounts.set('heidi', account('heidi', ['staff', 'admins']))
    const gw = await gatewayOn(op.issuer, env, upstream.url)
    t.teardown(async () => { await gw.close() })
    const jar = await signIn(gw, 'heidi')
    // A sign-in validated the session just now: the worst case is a change right after it.
    const changed = Date.now()
    op.accounts.get('heidi')!.groups = ['staff']
    const seen = await until(gw, jar, upstream, (id) => id?.admin === 'false', 10_000)
    const ms = Date.now() - changed
    t.ok(seen.ok, 'seen')
    t.ok(ms >= 900 && ms < 3000, `seen by the upstream ${ms} ms after the change (interval 1 s, polled every 25 ms)`)
    t.comment(`IdP change → upstream: ${ms} ms with OIDC_REFRESH_INTERVAL=1`)
  })

  t.test('an open WebSocket of a session whose identity changed is closed; the reconnection carries the new identity', async (t) => {
    op.accounts.set('ivan', account('ivan', ['staff', 'admins']))
    const ws = await startWsUpstream()
    const ownClock = new TestClock()
    const gw = await gatewayOn(op.issuer, env, ws.url, { clock: ownClock })
    t.teardown(async () => { await gw.close(); await ws.close() })
    const jar = await signIn(gw, 'ivan')
    const open = async (): Promise<WebSocket> => {
      const handshakes = ws.handshakes.length
      const socket = new WebSocket(gw.url.replace(/^http/, 'ws') + '/socket', { headers: { cookie: jar.cookieHeader(gw.url)! } })
      await within(once(socket, 'open'), 5000, 'WebSocket open')
      // The gateway connects to the upstream once the client's side is open.
      await within((async () => { while (ws.handshakes.length === handshakes) await new Promise((resolve) => setTimeout(resolve, 10)) })(), 5000, 'upstream handshake')
      return socket
    }
    const first = await open()
    t.equal(ws.handshakes.at(-1)!.headers['x-admin'], 'true', 'the handshake carried X-Admin: true')
    const closed = within(once(first, 'close'), 10_000, 'WebSocket closed')
    op.accounts.get('ivan')!.groups = ['staff']
    ownClock.advance(1000)
    const poke = await fetchWithJar(jar, `${gw.url}/poke`, { headers: { accept: 'application/json' } })
    await poke.text()
    const [code, reason] = await closed as [number, Buffer]
    t.same({ code, reason: reason.toString() }, { code: 1008, reason: 'identity changed' }, 'closed with 1008 "identity changed"')
    const second = await open()
    t.equal(ws.handshakes.at(-1)!.headers['x-admin'], 'false', 'the reconnection carries X-Admin: false')
    second.close()
  })
}
