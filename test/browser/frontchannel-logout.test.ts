// Front-channel logout in a real Chromium: the IdP's logout page (served from the IdP's origin)
// iframes the gateway's /auth/oidc/frontchannel-logout, the frame really renders (neither CSP nor
// X-Frame-Options blocks it) and the gateway session of that IdP session ends. The same frame on
// another origin is not rendered (frame-ancestors names the IdP's origin only).
import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { CookieJar, fetchWithJar } from '../support/browserless.js'
import { startOidcProvider } from '../support/oidc-provider.js'
import { startUpstream } from '../support/upstream.js'
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ssoLogin, startSsoGateway } from '../support/sso.js'
import { launchBrowser, requireChromium } from '../support/browser.js'

if (requireChromium(t)) {
  const browser = await launchBrowser()
  const upstream = await startUpstream()
  const op = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], backchannel_logout_uri: 'http://localhost:8080/auth/oidc/backchannel-logout', backchannel_logout_session_required: true }],
    accounts: { alice: { preferred_username: 'alice' } },
    backchannelLogout: true
  })
  const gw = await startSsoGateway(op.issuer, {}, upstream.url)
  // Another origin (and site): localhost instead of 127.0.0.1.
  let foreignPage = ''
  const foreign: Server = createServer((request, response) => {
    request.resume()
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(foreignPage)
  })
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve))
  const foreignUrl = `http://localhost:${(foreign.address() as AddressInfo).port}`
  t.teardown(async () => {
    await browser.close()
    await new Promise<void>((resolve) => { foreign.closeAllConnections(); foreign.close(() => { resolve() }) })
    await gw.close()
    await op.close()
    await upstream.close()
  })

  const signIn = async (): Promise<{ jar: CookieJar, sid: string }> => {
    const jar = new CookieJar()
    const before = new Set((await gw.db.kysely.selectFrom('sessions').select('id').execute()).map((row) => row.id))
    t.equal((await ssoLogin(gw, jar, { login: 'alice', password: 'x' })).status, 302)
    const row = (await gw.db.kysely.selectFrom('sessions').select(['id', 'idp_session_id']).execute()).find((r) => !before.has(r.id))
    return { jar, sid: row!.idp_session_id! }
  }
  const status = async (jar: CookieJar): Promise<number> => {
    const response = await fetchWithJar(jar, `${gw.url}/whoami`, { headers: { accept: 'application/json' } })
    await response.text()
    return response.status
  }
  const frontchannelUrl = (sid: string): string => `${gw.url}/auth/oidc/frontchannel-logout?iss=${encodeURIComponent(op.issuer)}&sid=${encodeURIComponent(sid)}`
  const framePage = (sid: string): string => `<!DOCTYPE html><html><head><title>Signing out</title></head><body><p>Signing you out of every application</p><iframe id="rp" src="${frontchannelUrl(sid)}"></iframe></body></html>`

  t.test('the IdP\'s logout page frames it: rendered, and the session ends', async (t) => {
    const alice = await signIn()
    t.equal(await status(alice.jar), 200)
    op.pages.set('/logout-frames', framePage(alice.sid))
    const page = await browser.freshPage()
    await page.goto(`${op.issuer}/logout-frames`, { waitUntil: 'load' })
    const frame = page.frames().find((f) => f.url().startsWith(gw.url))
    t.ok(frame, 'the frame is the gateway\'s page (not an error page)')
    t.match(await frame?.textContent('body'), /Signed out of the gateway/, 'and it rendered')
    t.equal(await status(alice.jar), 401, 'the gateway session of that IdP session ended')
    await page.close()
  })

  t.test('another origin framing it: not rendered', async (t) => {
    const alice = await signIn()
    foreignPage = framePage(alice.sid)
    const page = await browser.freshPage()
    await page.goto(`${foreignUrl}/`, { waitUntil: 'load' })
    const rendered = await Promise.all(page.frames().filter((f) => f !== page.mainFrame()).map(async (f) => await f.textContent('body').catch(() => '')))
    t.ok(rendered.length > 0, 'the iframe exists')
    t.notOk(rendered.some((text) => text?.includes('Signed out of the gateway') === true), 'the browser refused to render the gateway\'s page in it')
    await page.close()
  })
}
