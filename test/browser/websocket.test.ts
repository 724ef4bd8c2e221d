// A page of the application opens a WebSocket through the gateway, as a real browser does: same
// origin, the session cookie on the upgrade, the signed identity reaching the upstream. The script
// is the upstream's (the gateway's own pages have none).
import t from 'tap'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { startGateway } from '../support/gateway.js'
import { launchBrowser, requireChromium, type TestBrowser } from '../support/browser.js'
import { verifyIdentityHeaders } from '@authgate/verify'
import { HEADER_SIGNING_SECRET } from '../support/gateway.js'

// The application's page: opens /live on its own origin, asks who it is, shows the answer.
const PAGE = '<!doctype html><html lang="en"><head><title>Live</title><script src="live.js" defer></script></head><body><h1>Live</h1><output id="state">connecting</output><pre id="reply"></pre></body></html>'
const SCRIPT = `
const state = document.getElementById('state')
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/live?room=7')
ws.onopen = () => { state.textContent = 'open'; ws.send('whoami') }
ws.onmessage = (event) => { document.getElementById('reply').textContent = event.data; state.textContent = 'answered' }
ws.onclose = (event) => { state.textContent = 'closed ' + event.code }
ws.onerror = () => { state.textContent = 'error' }
`

interface Upgrade { url: string, headers: IncomingHttpHeaders }

async function startLiveApp (): Promise<{ url: string, upgrades: Upgrade[], close: () => Promise<void> }> {
  const upgrades: Upgrade[] = []
  const server = createServer((req, res) => {
    if (req.url?.endsWith('/live.js') === true) { res.writeHead(200, { 'content-type': 'text/javascript' }).end(SCRIPT); return }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', () => {
        const identity = verifyIdentityHeaders(req.headers, HEADER_SIGNING_SECRET)
        ws.send(JSON.stringify({ url: req.url, verified: identity.ok, user: identity.ok ? identity.identity.username : null }))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
    close: async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => { wss.close(() => { server.closeAllConnections(); server.close(() => { resolve() }) }) })
    }
  }
}

if (requireChromium(t)) {
  const browser: TestBrowser = await launchBrowser()
  const app = await startLiveApp()
  // /public/ pages are served without a session: a page that may try a socket before signing in.
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: app.url })
  // The browser first: a socket it opened ahead of time would hold a server's close for 60 s.
  t.teardown(async () => { await browser.close(); await gw.close(); await app.close() })

  t.test('a page opens a WebSocket through the gateway with the signed-in identity', async (t) => {
    const page = await browser.freshPage()
    await page.goto(`${gw.url}/board`)
    await page.getByLabel('Username').fill('wanda')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${gw.url}/board`)
    await page.locator('#state', { hasText: 'answered' }).waitFor()
    const reply = JSON.parse(await page.locator('#reply').textContent() ?? '{}') as { url: string, verified: boolean, user: string | null }
    t.same(reply, { url: '/live?room=7', verified: true, user: 'wanda' }, 'the upstream saw a verified identity on the upgrade')
    const upgrade = app.upgrades.at(-1)!
    t.equal(upgrade.headers['x-user'], 'wanda')
    t.notMatch(String(upgrade.headers.cookie ?? ''), /authgate/, 'the gateway\'s cookies are not forwarded')
  })

  t.test('without a session the upgrade is refused and never reaches the application', async (t) => {
    const page = await browser.freshPage()
    const before = app.upgrades.length
    await page.goto(`${gw.url}/public/board`)
    await page.locator('#state', { hasText: 'closed' }).waitFor()
    t.equal(await page.locator('#state').textContent(), 'closed 1006', 'the handshake fails')
    t.equal(app.upgrades.length, before, 'nothing reached the upstream')
  })
}
