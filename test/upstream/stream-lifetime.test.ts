// A proxied streaming response (server-sent events, a long download) lives no longer than the
// session that opened it: a logout (on this gateway or another replica), a revocation or a disabled
// user ends it within one revocation refresh, and the upstream sees its side closed too. Another
// user's stream is left alone. Real gateways, a real upstream with an endless event stream.
import t from 'tap'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { within } from '../support/within.js'

const upstream = await startUpstream()
// Revocations are re-read (and open responses re-checked) every 50 ms instead of every 5 s.
const gateway = await startGateway({}, { upstream: upstream.url, revocationRefreshMs: 50 })
// A second replica on the same database: same deployment, shared sessions.
const replica = await startGateway({}, { upstream: upstream.url, revocationRefreshMs: 50, db: gateway.db })
const streams: EventStream[] = []
t.teardown(async () => {
  // Only a failed test leaves a stream open (close() would end it, after its grace period).
  for (const stream of streams) stream.close()
  await replica.close(); await gateway.close(); await upstream.close()
})

/** Generous bound for anything that should happen within a few refreshes. */
const BOUND_MS = 10_000

interface EventStream { events: () => number, ended: Promise<'end' | 'error'>, close: () => void }

/** GET /events through a gateway; resolves once the first event has arrived. */
async function openEvents (gw: TestGateway, cookie: string): Promise<EventStream> {
  const res = await request(`${gw.url}/events`, { headers: { cookie, accept: 'text/event-stream' } })
  if (res.statusCode !== 200) throw new Error(`expected 200, got ${res.statusCode}`)
  let events = 0
  const first = new Promise<void>((resolve) => {
    res.body.on('data', (chunk: Buffer) => { events += chunk.toString().split('\n\n').length - 1; resolve() })
  })
  const ended = new Promise<'end' | 'error'>((resolve) => {
    res.body.once('end', () => { resolve('end') })
    res.body.once('error', () => { resolve('error') })
  })
  const stream = { events: () => events, ended, close: () => { res.body.destroy() } }
  streams.push(stream)
  await within(first, BOUND_MS, 'first event')
  return stream
}

async function signedIn (gw: TestGateway, username: string): Promise<string> {
  return cookieHeader((await loginLocal(gw.url, username)).cookies)
}

async function untilNoEventStreams (count: number): Promise<void> {
  while (upstream.openEventStreams() > count) await new Promise((resolve) => setTimeout(resolve, 10))
}

const bystanderCookie = await signedIn(gateway, 'bystander')
const bystander = await openEvents(gateway, bystanderCookie)

const endings: Array<[string, (username: string, cookie: string) => Promise<unknown>]> = [
  ['logout on the same gateway', async (_u, cookie) => await http(`${gateway.url}/logout`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })],
  ['logout on another replica', async (_u, cookie) => await http(`${replica.url}/logout`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })],
  ['revoking the user\'s sessions', async (u) => await gateway.users.revokeSessions(u)],
  ['disabling the user', async (u) => await gateway.users.setActive(u, false)]
]
let n = 0
for (const [name, end] of endings) {
  t.test(`${name} ends an event stream opened before it`, async (t) => {
    const username = `streamer${n++}`
    const cookie = await signedIn(gateway, username)
    const stream = await openEvents(gateway, cookie)
    const openBefore = upstream.openEventStreams()
    await end(username, cookie)
    const how = await within(stream.ended, BOUND_MS, 'the client\'s stream ended')
    t.ok(how === 'end' || how === 'error', `the stream ended (${how})`)
    await within(untilNoEventStreams(openBefore - 1), BOUND_MS, 'the upstream\'s side closed')
    t.pass('the upstream saw its response closed')
    const again = await http(`${gateway.url}/events`, { headers: { cookie, accept: 'application/json' } })
    t.equal(again.status, 401, 'the cookie cannot open a new one')
  })
}

t.test('another user\'s stream is left alone', async (t) => {
  const before = bystander.events()
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(bystander.events() > before, 'still receiving events after all the endings above')
  // Until its own session ends (which also leaves no open connection behind for the teardown).
  await http(`${gateway.url}/logout`, { headers: { cookie: bystanderCookie, 'sec-fetch-site': 'same-origin' } })
  t.ok(await within(bystander.ended, BOUND_MS, 'the bystander\'s stream ended'))
})
