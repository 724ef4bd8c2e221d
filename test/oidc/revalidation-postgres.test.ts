// SSO sessions that follow the IdP, on PostgreSQL: the whole re-validation suite (a schema of its own
// per gateway), then two replicas sharing one database: requests of one session on both at once make
// one refresh-token grant at the IdP, and a group removed at the IdP reaches the upstream through both
// within OIDC_REFRESH_INTERVAL plus one revocation refresh.
import t from 'tap'
import { CookieJar } from '../support/browserless.js'
import { startOidcProvider, type OidcProviderFixture } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import { createPostgresSchema, TEST_DATABASE_URL, type TestGateway } from '../support/gateway.js'
import { revalidationSuite } from './revalidation-suite.js'

const REVOCATION_REFRESH_MS = 50
const INTERVAL_MS = 1000

if (TEST_DATABASE_URL === undefined) {
  t.comment('TEST_DATABASE_URL not set: the PostgreSQL re-validation tests did not run')
} else {
  await revalidationSuite(async () => {
    const schema = await createPostgresSchema()
    const db = schema.open()
    return { db, close: async () => { await db.close(); await schema.drop() } }
  })

  t.test('two replicas sharing PostgreSQL: one refresh for both, and both send the new identity', async (t) => {
    const upstream = await startUpstream()
    const op = await startOidcProvider({
      clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
      refreshTokens: true,
      accounts: { judy: { preferred_username: 'judy', name: 'Judy Example', email: 'judy@example.test', email_verified: true, groups: ['staff', 'admins'] } },
      endSession: false,
      password: 'pw'
    })
    const schema = await createPostgresSchema()
    const [dbA, dbB] = [schema.open(), schema.open()]
    const env = { OIDC_REFRESH_INTERVAL: String(INTERVAL_MS / 1000), OIDC_ADMIN_GROUP: 'admins', ADMIN_USERNAMES: '' }
    const a = await startSsoGateway(op.issuer, env, upstream.url, { db: dbA, revocationRefreshMs: REVOCATION_REFRESH_MS })
    const b = await startSsoGateway(op.issuer, env, upstream.url, { db: dbB, revocationRefreshMs: REVOCATION_REFRESH_MS })
    t.teardown(async () => { await a.close(); await b.close(); await dbA.close(); await dbB.close(); await schema.drop(); await op.close(); await upstream.close() })

    // One sign-in (through A); the cookie is good on both replicas (same SECRET_KEY, same database).
    const jar = new CookieJar()
    const signedIn = await ssoLogin(a, jar, { login: 'judy', password: 'pw' })
    t.equal(signedIn.status, 302, 'signed in')
    const cookie = `authgate=${jar.get(a.url, 'authgate')!}`
    const seen = async (gw: TestGateway): Promise<{ admin: string | undefined, groups: string | undefined } | undefined> => {
      const response = await fetch(`${gw.url}/echo`, { headers: { cookie, accept: 'application/json' } }).catch(() => undefined)
      if (response === undefined) return undefined
      await response.text()
      if (response.status !== 200) return undefined
      const headers = upstream.received.at(-1)?.headers ?? {}
      return { admin: headers['x-admin'] as string | undefined, groups: headers['x-groups'] as string | undefined }
    }
    t.same(await seen(a), { admin: 'true', groups: 'staff,admins' }, 'A sends the sign-in\'s identity')
    t.same(await seen(b), { admin: 'true', groups: 'staff,admins' }, 'and so does B')

    const tokenCalls = (idp: OidcProviderFixture): number => idp.calls.filter((c) => c.method === 'POST' && c.path === '/token').length
    const grants = tokenCalls(op)
    // Past the interval, many requests of the session on both replicas at once.
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 100))
    const burst = await Promise.all(Array.from({ length: 20 }, async (_, i) => await seen(i % 2 === 0 ? a : b)))
    t.ok(burst.every((id) => id?.admin === 'true'), 'all served, with the identity they had')
    const refreshed = Date.now() + 5000
    while (Date.now() < refreshed) {
      const validated = await dbA.kysely.selectFrom('sessions').select(['validated_at', 'refreshing_until']).executeTakeFirstOrThrow()
      if (validated.refreshing_until === null && new Date(validated.validated_at!).getTime() > Date.now() - INTERVAL_MS) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    t.equal(tokenCalls(op), grants + 1, 'exactly one refresh-token grant at the IdP for both replicas')

    // A group removed at the IdP: seen through both replicas within the interval plus one revocation refresh.
    op.accounts.get('judy')!.groups = ['staff']
    const changed = Date.now()
    const firstSeen: Record<string, number> = {}
    const deadline = changed + 10_000
    while (Object.keys(firstSeen).length < 2 && Date.now() < deadline) {
      for (const [name, gw] of [['A', a], ['B', b]] as const) {
        if (firstSeen[name] === undefined && (await seen(gw))?.admin === 'false') firstSeen[name] = Date.now() - changed
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    t.ok(firstSeen['A'] !== undefined && firstSeen['B'] !== undefined, 'both replicas send X-Admin: false')
    // The session was validated up to ~100 ms before the change; add a margin for the IdP round trip and polling.
    const bound = INTERVAL_MS + REVOCATION_REFRESH_MS + 500
    t.ok(Math.max(firstSeen['A'] ?? Infinity, firstSeen['B'] ?? Infinity) < bound, `within the interval plus one revocation refresh (A ${firstSeen['A']} ms, B ${firstSeen['B']} ms after the change; bound ${bound} ms)`)
    t.comment(`IdP change → upstream, two replicas on PostgreSQL, OIDC_REFRESH_INTERVAL=1: A ${firstSeen['A']} ms, B ${firstSeen['B']} ms`)
    t.same(await seen(a), { admin: 'false', groups: 'staff' }, 'A: X-Admin false, X-Groups staff')
    t.same(await seen(b), { admin: 'false', groups: 'staff' }, 'B: the same')
    t.equal(tokenCalls(op), grants + 2, 'one more grant for the change, by one replica')
  })
}
