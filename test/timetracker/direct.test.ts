// TimeTracker itself (TIMETRACKER_DIR, through authgate_timetracker) answers only what the gateway
// signed: a request straight to it, with no identity headers, forged, tampered, stale or wrongly
// signed ones, or with nothing but TimeTracker's session cookie, gets 401; so does its Socket.IO,
// which connects through the gateway only, and only as the user the TimeTracker session belongs to.
// The browser-level tests are in browser.test.ts.
import t from 'tap'
import { existsSync } from 'node:fs'
import { io } from 'socket.io-client'
import { findPython, requireTool } from '../support/tools.js'
import { cookieHeader, http, loginLocal, setCookies } from '../support/http.js'
import { startTimeTrackerExample } from '../../scripts/timetracker/run.js'
import { signIdentity, type Identity } from '../../src/identity/headers.js'

const checkout = process.env.TIMETRACKER_DIR
const found = checkout !== undefined && existsSync(checkout + '/app/__init__.py') ? checkout : undefined
const python = findPython('import flask_login, flask_sqlalchemy, flask_migrate, flask_socketio, flask_babel, authlib, eventlet, gunicorn')

if (requireTool(t, 'a TimeTracker checkout in TIMETRACKER_DIR', found, 'set TIMETRACKER_DIR to a TimeTracker checkout') &&
    requireTool(t, "python3 with TimeTracker's packages", python, 'see docs/TIMETRACKER.md for the Debian packages')) {
  const example = await startTimeTrackerExample({ checkout: found, python, env: {}, logLevel: 'silent' })
  t.teardown(example.close)
  const gateway = example.url.slice(0, -1)
  const tt = example.timetrackerUrl
  const password = (username: string): string => example.localAccounts.find((a) => a.username === username)!.password

  /** The cookies of a browser signed in at the gateway that has opened TimeTracker's dashboard once. */
  const browserCookies = async (username: string): Promise<Record<string, string>> => {
    const { cookies } = await loginLocal(gateway, username, { password: password(username) })
    const dashboard = await http(`${gateway}/`, { headers: { cookie: cookieHeader(cookies), accept: 'text/html' } })
    if (dashboard.status !== 200) throw new Error(`dashboard through the gateway: ${dashboard.status}`)
    return { ...cookies, ...setCookies(dashboard.headers) }
  }
  const dave = await browserCookies('dave')
  const admin = await browserCookies('admin')
  const daveIdentity: Identity = { username: 'dave', isAdmin: false, email: null, fullName: 'Dave Local', groups: [] }

  t.test('straight to TimeTracker, anything the gateway did not sign gets 401', async (t) => {
    const direct = async (headers: Record<string, string>, path = '/'): Promise<number> => (await http(tt + path, { headers: { accept: 'text/html', ...headers } })).status
    const now = Math.floor(Date.now() / 1000)
    const signed = signIdentity(daveIdentity, example.headerSigningSecret, now)

    t.equal(await direct({}), 401, 'no headers')
    t.equal(await direct({}, '/admin'), 401, 'no headers, /admin')
    t.equal(await direct({ cookie: `session=${dave.session}` }), 401, "TimeTracker's own session cookie alone")
    t.equal(await direct({ 'x-user': 'admin', 'x-admin': 'true' }), 401, 'X-User and X-Admin without a signature')
    t.equal(await direct({ ...signed, 'x-auth-signature': 'A'.repeat(43) }), 401, 'a forged signature')
    t.equal(await direct({ ...signed, 'x-user': 'admin' }), 401, 'a signed identity with another user put in')
    t.equal(await direct({ ...signed, 'x-admin': 'true' }), 401, 'a signed identity made admin')
    t.equal(await direct(signIdentity(daveIdentity, 'another-secret-of-at-least-32-bytes-xxxxxxx', now)), 401, 'signed with another secret')
    t.equal(await direct(signIdentity(daveIdentity, example.headerSigningSecret, now - 3600)), 401, 'stale: signed an hour ago')
    t.equal(await direct(signIdentity(daveIdentity, example.headerSigningSecret, now + 3600)), 401, 'signed an hour ahead')
    // The same request, correctly signed: TimeTracker answers (the refusals above are the headers').
    t.equal(await direct(signed), 200, 'control: a fresh, correct signature gets the dashboard')
    t.equal(await direct({}, '/_health'), 200, 'a skip path needs no identity')
  })

  /** Connect TimeTracker's Socket.IO at `url`; resolves with "connected" or the connect_error message. */
  const socketIo = async (url: string, cookies: string, transports: Array<'polling' | 'websocket'> = ['polling', 'websocket']): Promise<string> => {
    const socket = io(url, { transports, extraHeaders: cookies === '' ? {} : { cookie: cookies }, reconnection: false, timeout: 10_000, forceNew: true })
    try {
      return await new Promise((resolve) => {
        socket.once('connect', () => { resolve('connected') })
        socket.once('connect_error', (err) => { resolve(`connect_error: ${err.message}`) })
      })
    } finally {
      socket.close()
    }
  }

  t.test("TimeTracker's Socket.IO connects through the gateway only, as the session's own user", async (t) => {
    t.match(await socketIo(tt, ''), /^connect_error/, 'directly, no headers (long-polling)')
    t.match(await socketIo(tt, '', ['websocket']), /^connect_error/, 'directly, no headers (WebSocket)')
    t.match(await socketIo(tt, `session=${dave.session}`), /^connect_error/, "directly, with TimeTracker's session cookie")
    t.match(await socketIo(gateway, `session=${dave.session}`), /^connect_error/, "through the gateway with TimeTracker's cookie but no gateway session")
    t.equal(await socketIo(gateway, cookieHeader(dave)), 'connected', 'through the gateway, signed in: connected')
    t.equal(await socketIo(gateway, cookieHeader(dave), ['websocket']), 'connected', 'over a WebSocket from the start too')
    // Dave's TimeTracker cookie with the admin's gateway session (a stolen cookie): refused.
    t.match(await socketIo(gateway, cookieHeader({ ...admin, session: dave.session! })), /^connect_error: unauthorized: the session is another user's/, "dave's TimeTracker cookie with the admin's gateway session")
  })
}
