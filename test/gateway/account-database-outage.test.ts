// The account page (/_authgate/account, LOCAL_MFA=optional) while its database is away (PostgreSQL,
// reached through a relay the test cuts, as in database-outage.test.ts): the session is still
// accepted on the cached revocation list, but the page needs the user's second factors, so it
// answers a 503 page with Retry-After, not cached (the same address works again once the database
// answers: the gateway scope's page headers, set before the route runs), nothing internal in it;
// and the page comes back without a restart.
import t from 'tap'
import { createPostgresSchema, startGateway, TEST_DATABASE_URL } from '../support/gateway.js'
import { openDatabase } from '../../src/db/index.js'
import { startUpstream } from '../support/upstream.js'
import { startTcpProxy } from '../support/tcp-proxy.js'
import { Browser, addUser } from '../support/second-factor.js'

if (TEST_DATABASE_URL === undefined) {
  t.comment('TEST_DATABASE_URL not set: the account page outage test did not run')
} else {
  const upstream = await startUpstream()
  t.teardown(upstream.close)

  t.test('GET /_authgate/account with the database down: a 503 page, not cached, with Retry-After', async (t) => {
    const schema = await createPostgresSchema()
    const target = new URL(TEST_DATABASE_URL!)
    const relay = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    const db = openDatabase(relay.through(TEST_DATABASE_URL!), { schema: schema.schema })
    const gw = await startGateway({ LOCAL_AUTH: 'password', LOCAL_MFA: 'optional' }, { db, upstream: upstream.url, revocationRefreshMs: 100 })
    t.teardown(async () => { await gw.close(); await db.close(); await relay.close(); await schema.drop() })
    await addUser(gw, 'alice')

    const browser = new Browser(gw.url)
    t.equal((await browser.signIn('alice')).status, 303, 'signed in')
    const before = await browser.get('/_authgate/account')
    t.equal(before.status, 200, 'the page before the outage')
    t.match(before.body, 'data-passkeys="0"')

    relay.cut()
    const down = await browser.get('/_authgate/account')
    t.equal(down.status, 503, '503')
    t.match(String(down.headers['content-type']), /^text\/html/, 'a page')
    t.equal(down.headers['cache-control'], 'no-store', 'not cached')
    t.match(String(down.headers['retry-after']), /^\d+$/, 'with Retry-After')
    t.match(down.body, /cannot reach its database/, 'says why')
    t.match(down.body, /[Tt]ry again|Back/, 'and what to do')
    t.notMatch(down.body, /\bat \S+ \(|node_modules|ECONNREFUSED|Connection terminated|stack/i, 'nothing internal')
    const api = await browser.get('/_authgate/account', { accept: 'application/json' })
    t.equal(api.status, 503, 'a JSON caller: 503 too')
    t.equal(api.headers['cache-control'], 'no-store', 'not cached either')

    relay.restore()
    let back = 0
    for (let i = 0; i < 100 && back !== 200; i++) {
      back = (await browser.get('/_authgate/account')).status
      if (back !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.equal(back, 200, 'the page again once the database answers, without a restart')
  })
}
