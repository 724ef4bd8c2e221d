// Throttling under attack. Guessing stays bounded (per address, per username at an address, per
// device cookie) while nobody can lock an account's owner out: failures from other addresses only
// slow down browsers the account was never signed in with. The state is in the database: shared by
// replicas, kept across restarts. Clients come through a trusted proxy (TRUST_PROXY + X-Forwarded-For),
// so one test client can be many addresses.
import t, { type Test as Tap } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPostgresSchema, startGateway, TEST_DATABASE_URL, type TestGateway } from '../support/gateway.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from '../support/http.js'
import { hashPassword } from '../../src/auth/local/password.js'
import { MESSAGES } from '../../src/pages/login.js'
import { escapeHtml } from '../../src/pages/html.js'
import { THROTTLE } from '../../src/auth/local/throttle.js'
import { TestClock } from '../support/clock.js'

const VICTIM_PASSWORD = 'victim password'
const MALLORY_PASSWORD = 'mallory password'
const victimHash = await hashPassword(VICTIM_PASSWORD)
const malloryHash = await hashPassword(MALLORY_PASSWORD)

async function gateway (t: Tap, env: Record<string, string> = {}, options: Parameters<typeof startGateway>[1] = {}): Promise<TestGateway> {
  const gw = await startGateway({ LOCAL_AUTH: 'password', TRUST_PROXY: '127.0.0.1', ...env }, options)
  t.teardown(gw.close)
  return gw
}

async function addAccounts (gw: TestGateway): Promise<void> {
  await gw.users.create({ username: 'victim', passwordHash: victimHash })
  await gw.users.create({ username: 'mallory', passwordHash: malloryHash })
}

/** A browser with its own cookies, reaching the gateway from `address` through the trusted proxy. */
class Browser {
  cookies: Record<string, string> = {}
  constructor (private readonly url: string, public address: string) {}

  /** Sign in afresh (as after signing out: the device cookie stays). */
  async signIn (username: string, password: string, url = this.url): Promise<Response> {
    delete this.cookies.authgate
    const page = await http(`${url}/login`, { headers: this.headers() })
    this.cookies = { ...this.cookies, ...setCookies(page.headers) }
    const res = await http(`${url}/login`, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password, csrf_token: csrfTokenFrom(page.body), next: '/' }).toString()
    })
    this.cookies = { ...this.cookies, ...setCookies(res.headers) }
    return res
  }

  private headers (): Record<string, string> {
    return { 'x-forwarded-for': this.address, cookie: cookieHeader(this.cookies) }
  }
}

const statusesOf = async (responses: Array<Promise<Response>>): Promise<number[]> => (await Promise.all(responses)).map((r) => r.status)
const count = (statuses: number[], status: number): number => statuses.filter((s) => s === status).length

t.test('concurrent guesses from one address: exactly the limit is checked, the rest wait', async (t) => {
  const gw = await gateway(t)
  await addAccounts(gw)
  const attacker = new Browser(gw.url, '203.0.113.7')
  await attacker.signIn('victim', 'warm-up') // the CSRF cookie, so the burst below shares one browser
  const statuses = await statusesOf(Array.from({ length: 30 }, async (_, i) => await attacker.signIn('victim', `guess ${i}`)))
  t.equal(count(statuses, 401), THROTTLE.perUsernameAtAddress - 1, 'the limit (with the warm-up) was checked')
  t.equal(count(statuses, 429), 30 - (THROTTLE.perUsernameAtAddress - 1), 'the others were throttled before any password check')
  const right = await attacker.signIn('victim', VICTIM_PASSWORD)
  t.equal(right.status, 429, 'from that address even the right password waits')
  t.notOk(setCookies(right.headers).authgate, 'no session')
})

t.test('429 carries Retry-After, the page says when to try again, and then it can', async (t) => {
  const clock = new TestClock()
  const gw = await gateway(t, {}, { clock })
  await addAccounts(gw)
  const attacker = new Browser(gw.url, '203.0.113.8')
  for (let i = 0; i < THROTTLE.perUsernameAtAddress; i++) t.equal((await attacker.signIn('victim', `guess ${i}`)).status, 401)
  const res = await attacker.signIn('victim', 'one more')
  t.equal(res.status, 429)
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter > THROTTLE.windowSeconds - 60 && retryAfter <= THROTTLE.windowSeconds, `Retry-After ${String(res.headers['retry-after'])} is the rest of the window`)
  t.match(res.body, escapeHtml(MESSAGES.throttled(retryAfter)))
  t.match(res.body, /Try again in 15 minutes\./)

  clock.advance((retryAfter - 1) * 1000)
  t.equal((await attacker.signIn('victim', 'still too early')).status, 429, 'a second before Retry-After is over: still waiting')
  clock.advance(1000)
  t.equal((await attacker.signIn('victim', 'guess after the window')).status, 401, 'once Retry-After is over: a new window, checked again')
})

t.test('the owner signs in from another address while an attacker hammers the account', async (t) => {
  const gw = await gateway(t)
  await addAccounts(gw)
  // A small botnet: four addresses, each spending its whole budget on the account.
  for (const address of ['203.0.113.10', '203.0.113.11', '203.0.113.12', '203.0.113.13']) {
    const bot = new Browser(gw.url, address)
    const statuses = await statusesOf(Array.from({ length: 15 }, async (_, i) => await bot.signIn('victim', `guess ${i}`)))
    t.ok(count(statuses, 401) <= THROTTLE.perUsernameAtAddress, `${address}: at most ${THROTTLE.perUsernameAtAddress} checked`)
    t.ok(count(statuses, 429) >= 15 - THROTTLE.perUsernameAtAddress, `${address}: the rest throttled`)
  }

  const owner = new Browser(gw.url, '198.51.100.20')
  const res = await owner.signIn('victim', VICTIM_PASSWORD)
  t.equal(res.status, 303, 'the owner, from a browser never used here before, is signed in')
  t.ok(setCookies(res.headers).authgate, 'with a session')

  // Under attack, a new address gets fewer guesses at the account, not none.
  const newcomer = new Browser(gw.url, '198.51.100.30')
  for (let i = 0; i < THROTTLE.perUsernameAtAddressUnderAttack; i++) t.equal((await newcomer.signIn('victim', `guess ${i}`)).status, 401, `new address, guess ${i + 1} checked`)
  t.equal((await newcomer.signIn('victim', VICTIM_PASSWORD)).status, 429, 'then it is slowed down')
})

t.test('a browser the owner signed in with before is not slowed down, even at the attacker\'s address', async (t) => {
  const gw = await gateway(t)
  await addAccounts(gw)
  const shared = '192.0.2.50' // one NAT: the owner and the attacker share the address
  const owner = new Browser(gw.url, shared)
  t.equal((await owner.signIn('victim', VICTIM_PASSWORD)).status, 303, 'the owner signs in once')
  t.ok(owner.cookies.authgate_device, 'and the browser gets a device cookie')

  const attacker = new Browser(gw.url, shared)
  t.equal((await attacker.signIn('mallory', MALLORY_PASSWORD)).status, 303, 'the attacker has a device cookie too, for his own account')
  const statuses = await statusesOf(Array.from({ length: 40 }, async (_, i) => await attacker.signIn(i % 2 === 0 ? 'victim' : `user${i}`, `guess ${i}`)))
  t.ok(count(statuses, 429) > 0, 'the attacker is throttled at the shared address')
  t.equal(count(statuses, 303), 0)
  for (const address of ['203.0.113.20', '203.0.113.21']) {
    const bot = new Browser(gw.url, address)
    for (let i = 0; i < THROTTLE.perUsernameAtAddress; i++) await bot.signIn('victim', `guess ${i}`)
  }
  const guessWithOwnCookie = new Browser(gw.url, shared)
  guessWithOwnCookie.cookies = { authgate_device: attacker.cookies.authgate_device! }
  t.equal((await guessWithOwnCookie.signIn('victim', 'guess')).status, 429, 'the attacker\'s device cookie is for mallory: no help against victim')

  for (let i = 0; i < 3; i++) t.equal((await owner.signIn('victim', `typo ${i}`)).status, 401, `the owner's typo ${i + 1} is checked, not throttled`)
  const res = await owner.signIn('victim', VICTIM_PASSWORD)
  t.equal(res.status, 303, 'the owner signs in from the attacked address with the remembered browser')

  const stolen = new Browser(gw.url, '203.0.113.99')
  stolen.cookies = { authgate_device: owner.cookies.authgate_device! }
  const stolenStatuses: number[] = []
  for (let i = 0; i < THROTTLE.perDevice + 2; i++) stolenStatuses.push((await stolen.signIn('victim', `guess ${i}`)).status)
  t.same(stolenStatuses, [...Array(THROTTLE.perDevice).fill(401), 429, 429], 'a device cookie has a failure budget of its own')
})

t.test('password spraying from one address: the address budget, own account or not', async (t) => {
  const gw = await gateway(t)
  await addAccounts(gw)
  const sprayer = new Browser(gw.url, '203.0.113.30')
  const statuses: number[] = []
  for (let i = 0; i < THROTTLE.perAddress + 2; i++) {
    statuses.push((await sprayer.signIn(`user${i}`, 'Winter2026!')).status)
    // A browser the account was never used with: its successes do not reset the address's failures.
    const fresh = new Browser(gw.url, sprayer.address)
    t.equal((await fresh.signIn('mallory', MALLORY_PASSWORD)).status, i < THROTTLE.perAddress - 1 ? 303 : 429, `own sign-in after ${i + 1} guesses`)
  }
  t.same(statuses, [...Array(THROTTLE.perAddress).fill(401), 429, 429], 'the address\'s guesses checked up to its limit, then throttled')
  t.equal((await new Browser(gw.url, '203.0.113.31').signIn('user1', 'Winter2026!')).status, 401, 'another address has its own budget')
})

t.test('IPv6: one /64 is one address; IPv4-mapped addresses are their IPv4 address', async (t) => {
  const gw = await gateway(t)
  await addAccounts(gw)
  const statuses: number[] = []
  for (let i = 1; i <= THROTTLE.perAddress + 1; i++) statuses.push((await new Browser(gw.url, `2001:db8:1:2::${i.toString(16)}`).signIn(`user${i}`, 'guess')).status)
  t.same(statuses, [...Array(THROTTLE.perAddress).fill(401), 429], 'rotating within the /64 shares one budget')
  t.equal((await new Browser(gw.url, '2001:db8:1:2:ffff:ffff:ffff:ffff').signIn('anyone', 'guess')).status, 429, 'the whole /64')
  t.equal((await new Browser(gw.url, '2001:db8:1:3::1').signIn('anyone', 'guess')).status, 401, 'the next /64 has its own budget')

  for (let i = 0; i < THROTTLE.perAddress; i++) t.equal((await new Browser(gw.url, '198.51.100.77').signIn(`user${i}`, 'guess')).status, 401)
  t.equal((await new Browser(gw.url, '::ffff:198.51.100.77').signIn('anyone', 'guess')).status, 429, 'an IPv4-mapped address is its IPv4 address')
})

t.test('a restarted gateway on the same SQLite file still throttles', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-throttle-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const env = { DATABASE_URL: `sqlite:${join(dir, 'authgate.db')}` }
  const first = await startGateway({ LOCAL_AUTH: 'password', TRUST_PROXY: '127.0.0.1', ...env })
  await addAccounts(first)
  const attacker = new Browser(first.url, '203.0.113.40')
  for (let i = 0; i < THROTTLE.perUsernameAtAddress; i++) t.equal((await attacker.signIn('victim', `guess ${i}`)).status, 401)
  await first.close()
  const second = await gateway(t, env)
  t.equal((await attacker.signIn('victim', 'after restart', second.url)).status, 429, 'the failures before the restart still count')
})

t.test('two gateways sharing one PostgreSQL schema share the throttle', async (t) => {
  if (TEST_DATABASE_URL === undefined) {
    if (process.env.CI !== undefined) t.fail('TEST_DATABASE_URL must be set in CI so the PostgreSQL tests run')
    else t.comment('TEST_DATABASE_URL is not set: skipped (set it to postgres://postgres@127.0.0.1:5432/test)')
    return
  }
  const schema = await createPostgresSchema()
  const dbA = schema.open()
  const dbB = schema.open()
  const a = await gateway(t, { DATABASE_URL: schema.url }, { db: dbA })
  const b = await gateway(t, { DATABASE_URL: schema.url }, { db: dbB })
  t.teardown(async () => { await dbA.close(); await dbB.close(); await schema.drop() }) // after the gateways'
  await addAccounts(a)

  const attacker = new Browser(a.url, '203.0.113.50')
  await attacker.signIn('victim', 'warm-up', a.url)
  const statuses = await statusesOf(Array.from({ length: 30 }, async (_, i) => await attacker.signIn('victim', `guess ${i}`, i % 2 === 0 ? a.url : b.url)))
  // At most the limit: the two replicas' counts interleave, so the account may come "under attack"
  // (a lower limit) a guess or two early; never later.
  const checked = count(statuses, 401)
  t.ok(checked >= 1 && checked <= THROTTLE.perUsernameAtAddress - 1, `concurrent guesses spread over both replicas: the limit is checked once (${checked} checked)`)
  t.equal(checked + count(statuses, 429), 30, 'the others were throttled before any password check')
  t.equal((await attacker.signIn('victim', VICTIM_PASSWORD, b.url)).status, 429, 'and the other replica throttles too')
  t.equal((await new Browser(b.url, '198.51.100.60').signIn('victim', VICTIM_PASSWORD)).status, 303, 'while the owner gets in from elsewhere')
})

t.test('LOCAL_AUTH=username: refused sign-ins are throttled per address', async (t) => {
  const gw = await gateway(t, { LOCAL_AUTH: 'username', ALLOW_SELF_REGISTER: 'false' })
  await gw.users.create({ username: 'alice' })
  const prober = new Browser(gw.url, '203.0.113.60')
  const statuses: number[] = []
  for (let i = 0; i < THROTTLE.perAddress + 1; i++) statuses.push((await prober.signIn(`unknown${i}`, '')).status)
  t.same(statuses, [...Array(THROTTLE.perAddress).fill(403), 429], 'probing for registered names is bounded')
  t.equal((await new Browser(gw.url, '198.51.100.61').signIn('alice', '')).status, 303, 'others sign in')
})
