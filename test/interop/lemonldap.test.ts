// Interop with an independently written OpenID Provider, LemonLDAP::NG 2.16 (Debian's packages), run
// by test/support/lemonldap-idp.sh on loopback: in Chromium, SSO as dwho → the upstream sees the
// identity (groups from userinfo: LemonLDAP's ID token carries only `sub`), then RP-initiated logout
// ends the session at the gateway and at LemonLDAP; a sign-out at LemonLDAP's portal ends the gateway
// session through the front-channel iframe (which names the session by subject). It catches what node-oidc-provider cannot:
// another implementation's defaults and quirks (docs/OIDC_SETUP.md, "LemonLDAP::NG").
// Without the packages (or root, which the script needs to run nginx and FastCGI as www-data) it
// skips with the reason on a developer machine and fails under CI=true (where .ci/run installs them).
import t, { type Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { Page } from 'playwright-core'
import type { Env } from '../../src/config/index.js'
import { chromiumMissingReason, isCI, launchBrowser, type TestBrowser } from '../support/browser.js'
import { startSsoGateway } from '../support/sso.js'
import { startUpstream } from '../support/upstream.js'
import type { TestGateway } from '../support/gateway.js'

const SCRIPT = new URL('../support/lemonldap-idp.sh', import.meta.url).pathname
/** Where the gateway is registered at LemonLDAP; the test's tab sends these addresses to the gateway. */
const GATEWAY_ORIGIN = 'http://localhost:8080'
const FRONTCHANNEL_LOGOUT_URL = `${GATEWAY_ORIGIN}/auth/oidc/frontchannel-logout`
/** The IDP_DIR of the running instance, so that the next run stops what a crashed one left behind. */
const LAST_RUN = join(tmpdir(), 'authgate-lemonldap-interop.last')

function unavailableReason (): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    return 'the LemonLDAP::NG fixture runs as root (it starts nginx and a FastCGI server as www-data)'
  }
  const packages = execFileSync('bash', [SCRIPT, 'packages'], { encoding: 'utf8' }).split('\n').filter((p) => p !== '')
  const missing = packages.filter((p) => spawnSync('dpkg', ['-s', p], { stdio: 'ignore' }).status !== 0)
  if (missing.length > 0) return `Debian packages missing: ${missing.join(' ')} (apt-get install --no-install-recommends them, or run .ci/run)`
  return chromiumMissingReason()
}

/** An unused loopback port for the portal (8190, the script's default, may be someone's own instance). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

function script (command: string, env: Record<string, string>): string {
  return execFileSync('bash', [SCRIPT, command], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 90_000, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Stop the instance a crashed run left (by the PIDs it recorded), and remove its directory. */
function stopLeftover (): void {
  if (!existsSync(LAST_RUN)) return
  const idpDir = readFileSync(LAST_RUN, 'utf8').trim()
  if (idpDir !== '' && existsSync(idpDir)) {
    spawnSync('bash', [SCRIPT, 'stop'], { env: { ...process.env, IDP_DIR: idpDir }, stdio: 'ignore', timeout: 30_000 })
    rmSync(dirname(idpDir), { recursive: true, force: true })
  }
  unlinkSync(LAST_RUN)
}

/** KEY=value lines (values possibly single-quoted), as the script's `env` prints them. */
function parseEnv (text: string): Env {
  const env: Env = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (m?.[1] !== undefined && m[2] !== undefined) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1')
  }
  return env
}

const missing = unavailableReason()
if (missing !== undefined) {
  if (isCI()) t.fail(`${missing} (CI is set, so the LemonLDAP::NG interop test may not be skipped)`)
  else {
    t.comment(`SKIPPING LemonLDAP::NG interop: ${missing}`)
    t.plan(0, missing)
  }
} else {
  const started = performance.now()
  stopLeftover()
  const parent = mkdtempSync(join(tmpdir(), 'authgate-llng-'))
  chmodSync(parent, 0o711) // the FastCGI server runs as www-data and must reach IDP_DIR
  const idpDir = join(parent, 'llng')
  const port = await freePort()
  const idpEnv = {
    IDP_DIR: idpDir,
    IDP_PORT: String(port),
    AG_URL: GATEWAY_ORIGIN,
    // Registered (front-channel, session required) for the gateway's front-channel logout route.
    FRONTCHANNEL_LOGOUT_URL,
    NPROC: '1'
  }
  const cleanups: Array<() => Promise<void> | void> = []
  // Registered before anything starts, so a failure part-way still stops what did start.
  t.teardown(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
    spawnSync('bash', [SCRIPT, 'stop'], { env: { ...process.env, ...idpEnv }, stdio: 'ignore', timeout: 30_000 })
    rmSync(parent, { recursive: true, force: true })
    if (existsSync(LAST_RUN)) unlinkSync(LAST_RUN)
    t.comment(`LemonLDAP::NG interop: ${Math.round(performance.now() - started)} ms in all`)
  })
  writeFileSync(LAST_RUN, idpDir)
  script('start', idpEnv)
  const portal = `http://127.0.0.1:${port}`
  const env = parseEnv(script('env', idpEnv))
  if (env['OIDC_ISSUER'] !== `${portal}/`) throw new Error(`the script's env printed OIDC_ISSUER=${env['OIDC_ISSUER']}, not the portal URL ${portal}/`)

  const upstream = await startUpstream()
  cleanups.push(() => upstream.close())
  const gw: TestGateway = await startSsoGateway(env['OIDC_ISSUER']!, env, upstream.url)
  cleanups.push(() => gw.close())
  const browser: TestBrowser = await launchBrowser()
  cleanups.push(() => browser.close()) // closed first (cleanups run in reverse): its sockets would hold the servers

  /** Front-channel logout requests the portal's iframes made (to the registered address). */
  const frontChannel: string[] = []
  const tab = async (): Promise<Page> => {
    const page = await browser.freshPage()
    await page.route(`${GATEWAY_ORIGIN}/**`, async (route) => {
      const url = new URL(route.request().url())
      if (url.pathname === new URL(FRONTCHANNEL_LOGOUT_URL).pathname) {
        frontChannel.push(url.href)
        // Answered in place, not redirected: the portal's CSP (child-src 'self' <the RP's origin>)
        // lets its iframe load the registered address only, as it would in production.
        await route.fulfill({ response: await route.fetch({ url: gw.url + url.pathname + url.search, maxRedirects: 0 }) })
        return
      }
      await route.fulfill({ status: 302, headers: { location: gw.url + url.pathname + url.search } })
    })
    return page
  }

  const signIn = async (page: Page, login: string): Promise<void> => {
    // AUTH_METHOD=oidc: a protected page sends the browser straight on to the IdP.
    await page.goto(`${gw.url}/`)
    await page.waitForURL((url) => url.origin === portal)
    await page.locator('#userfield').fill(login)
    await page.locator('#passwordfield').fill(login)
    await page.locator('button[type=submit].btn-success').click()
    await page.waitForURL((url) => url.origin === gw.url && url.pathname !== '/auth/oidc/callback')
  }

  const seenUpstream = async (t: Test, page: Page): Promise<{ user: string, groups: string, email: string, fullName: string } | undefined> => {
    const before = upstream.received.length
    await page.goto(`${gw.url}/whoami`)
    if (upstream.received.length === before) {
      t.comment(`no request reached the upstream; the page is ${page.url()}`)
      return undefined
    }
    const h = upstream.received.at(-1)!.headers
    const one = (name: string): string => decodeURIComponent(String(h[name] ?? ''))
    return { user: one('x-user'), groups: String(h['x-groups'] ?? ''), email: one('x-email'), fullName: one('x-full-name') }
  }

  const portalSignedIn = async (page: Page): Promise<boolean> => {
    await page.goto(`${portal}/`)
    return (await page.locator('#userfield').count()) === 0
  }

  await t.test('SSO as dwho: the upstream sees the identity, groups from userinfo; RP-initiated logout ends both sessions', async (t) => {
    const page = await tab()
    await signIn(page, 'dwho')
    t.equal(new URL(page.url()).origin, gw.url, `back at the gateway (${page.url()})`)
    const seen = await seenUpstream(t, page)
    t.equal(seen?.user, 'dwho')
    t.ok(seen?.groups.split(',').includes('timelords'), `groups from userinfo: ${seen?.groups}`)
    t.equal(seen?.email, 'dwho@badwolf.org')
    t.ok(await portalSignedIn(page), 'signed in at LemonLDAP too')

    await page.goto(`${gw.url}/logout`)
    await page.waitForURL((url) => url.origin === portal)
    // LemonLDAP asks "Do you want to logout?" (the fixture leaves its confirmation on, as by default).
    await page.locator('button.positive').click()
    // Then its "you'll be redirected in 30 seconds" page (with the front-channel iframes): go on at once.
    await page.waitForURL((url) => url.origin === portal && url.pathname.startsWith('/oauth2/logout'))
    // It continues to the post-logout URI, the gateway's /login (which, with SSO only, goes on to the IdP).
    const [backAtLogin] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(`${gw.url}/login?`)),
      page.locator('#form button.positive').click()
    ])
    t.ok(new URL(backAtLogin.url()).searchParams.get('state'), 'back at the post-logout URI, with the state')
    t.equal(await seenUpstream(t, page), undefined, 'no session at the gateway')
    t.notOk(await portalSignedIn(page), 'no session at LemonLDAP')
  })

  await t.test('sign-out at the LemonLDAP portal: its front-channel iframe ends the gateway session', async (t) => {
    const page = await tab()
    await signIn(page, 'dwho')
    t.ok(await seenUpstream(t, page), 'signed in')
    const rows = await gw.db.kysely.selectFrom('sessions').innerJoin('users', 'users.id', 'sessions.user_id')
      .select(['sessions.idp_session_id', 'sessions.oidc_issuer', 'sessions.ended_at']).where('users.username', '=', 'dwho').where('sessions.ended_at', 'is', null).execute()
    t.same(rows, [{ idp_session_id: null, oidc_issuer: env['OIDC_ISSUER'], ended_at: null }], 'one open session: LemonLDAP\'s ID token has no sid')
    const cookies = await page.context().cookies(gw.url)
    const cookieHeader = cookies.map((c) => `${c.name}=${c.value}`).join('; ')
    t.ok(cookies.some((c) => c.name === 'authgate'), 'the browser holds the gateway\'s session cookie')
    const refusedFraming: string[] = []
    page.on('console', (message) => { if (/frame-ancestors|Refused to (display|frame)/i.test(message.text())) refusedFraming.push(message.text()) })

    // RP-initiated logout (the test before) loads the same iframe: count from here.
    const counted = async (): Promise<{ accepted: number, ended: number }> => {
      const text = await fetch(`${gw.url}/_authgate/metrics`).then(async (r) => await r.text())
      const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN)
      return { accepted: value(/^authgate_idp_logouts_total\{channel="front",outcome="accepted"\} (\d+)$/m), ended: value(/^authgate_idp_logout_sessions_ended_total\{channel="front"\} (\d+)$/m) }
    }
    const before = await counted()
    frontChannel.length = 0
    const answered = page.waitForResponse((r) => r.url().startsWith(`${FRONTCHANNEL_LOGOUT_URL}?`), { timeout: 15_000 })
    await page.goto(`${portal}/?logout=1`)
    // The portal's logout page loads one iframe per relying party of the session, routed to the gateway.
    const answer = await answered
    t.equal(frontChannel.length, 1, `one front-channel request: ${frontChannel.join(' ')}`)
    const sent = new URL(frontChannel[0] ?? FRONTCHANNEL_LOGOUT_URL)
    t.equal(sent.origin + sent.pathname, FRONTCHANNEL_LOGOUT_URL)
    t.equal(sent.searchParams.get('iss'), `${portal}/`, 'iss: the issuer')
    // LemonLDAP::NG 2.16 puts the relying party's user ID (the ID token's `sub`) in `sid`, and its
    // ID tokens carry no `sid` claim: the gateway matches it against the subject's sid-less sessions.
    t.equal(sent.searchParams.get('sid'), 'dwho', 'sid: the sub, not a session ID')
    t.equal(answer.status(), 200, 'the gateway accepted it')
    t.equal(new URL(portal).origin, new URL(env['OIDC_ISSUER']!).origin, 'the portal\'s origin is the issuer\'s')
    t.match(await answer.headerValue('content-security-policy'), new RegExp(`frame-ancestors ${new URL(portal).origin}(;|$)`), 'the IdP\'s origin may frame it')
    const frame = page.frames().find((f) => f.url().startsWith(`${FRONTCHANNEL_LOGOUT_URL}?`))
    t.ok(frame, `the gateway's page is in a frame of the portal's page (${page.frames().map((f) => f.url()).join(' ')})`)
    if (frame !== undefined) t.match(await frame.locator('body').innerText(), /Signed out of the gateway/, 'and rendered there: framing allowed')
    t.same(refusedFraming, [], 'no framing refused')

    const after = await counted()
    t.same({ accepted: after.accepted - before.accepted, ended: after.ended - before.ended }, { accepted: 1, ended: 1 }, 'the gateway counted it (authgate_idp_logouts_total, front, accepted): one session ended')
    // The old cookie, replayed: the session ended at the gateway (not only in this browser).
    const replay = await fetch(`${gw.url}/whoami`, { headers: { cookie: cookieHeader, accept: 'application/json' } })
    await replay.text()
    t.equal(replay.status, 401, 'the gateway session ended')
    t.equal(await seenUpstream(t, page), undefined, 'the next request in the browser is not signed in')
    t.notOk(await portalSignedIn(page), 'no session at LemonLDAP')
  })
}
