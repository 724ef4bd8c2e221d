// Throttling under attack: concurrent guesses and an attacker's own account must not get around the
// limit of 10 failed sign-ins per address and per username within 15 minutes.
import t from 'tap'
import { startGateway } from '../support/gateway.js'
import { cookieHeader, csrfTokenFrom, http, setCookies } from '../support/http.js'
import { hashPassword } from '../../src/auth/local/password.js'

const gw = await startGateway({ LOCAL_AUTH: 'password' })
t.teardown(gw.close)
await gw.users.create({ username: 'victim', passwordHash: await hashPassword('victim password') })
await gw.users.create({ username: 'mallory', passwordHash: await hashPassword('mallory password') })
const page = await http(`${gw.url}/login`)
const jar = setCookies(page.headers)
const token = csrfTokenFrom(page.body)

const attempt = async (username: string, password: string): Promise<number> => (await http(`${gw.url}/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(jar) },
  body: new URLSearchParams({ username, password, csrf_token: token, next: '/' }).toString()
})).status

t.test('concurrent guesses: at most 10 are checked, the rest wait', async (t) => {
  const statuses = await Promise.all(Array.from({ length: 30 }, async (_, i) => await attempt('victim', `guess ${i}`)))
  t.equal(statuses.filter((s) => s === 401).length, 10, 'exactly the limit was checked')
  t.equal(statuses.filter((s) => s === 429).length, 20, 'the others were throttled before any password check')
  t.equal(await attempt('victim', 'victim password'), 429, 'and the account stays throttled')
})

t.test('signing in to one\'s own account does not reset the address\'s failures', async (t) => {
  const other = await startGateway({ LOCAL_AUTH: 'password' })
  t.teardown(other.close)
  await other.users.create({ username: 'mallory', passwordHash: await hashPassword('mallory password') })
  const p = await http(`${other.url}/login`)
  const j = setCookies(p.headers)
  const tok = csrfTokenFrom(p.body)
  const post = async (username: string, password: string): Promise<number> => (await http(`${other.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(j) },
    body: new URLSearchParams({ username, password, csrf_token: tok, next: '/' }).toString()
  })).status
  // Password spraying: one guess per account, and a successful sign-in to mallory's own account in between.
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    statuses.push(await post(`user${i}`, 'Winter2026!'))
    t.equal(await post('mallory', 'mallory password'), i < 9 ? 303 : 429, `own sign-in ${i}`)
  }
  t.same(statuses.slice(0, 10), Array(10).fill(401), 'ten guesses checked')
  t.same(statuses.slice(10), [429, 429], 'then the address is throttled, own account or not')
})
