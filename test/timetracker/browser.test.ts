// TimeTracker itself behind the gateway, in a real Chromium: `npm run example:timetracker` as the
// tests start it (TimeTracker from TIMETRACKER_DIR through authgate_timetracker, the demo OpenID
// Provider, the gateway with local accounts and SSO). Sign-in both ways, TimeTracker's own timer
// and its Socket.IO events through the gateway (to their user only), the admin pages, a disabled
// account, TimeTracker's own Logout link, and demotions that hold from the next request.
// TimeTracker's CDN assets are served from local copies (test/support/timetracker-browser.ts).
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { launchBrowser, requireChromium, type TestBrowser } from '../support/browser.js'
import { findPython, requireTool } from '../support/tools.js'
import { hostsOf, LOCAL_ASSET_PACKAGES, missingLocalAssets, serveCdnLocally, watchSocketIo } from '../support/timetracker-browser.js'
import { startTimeTrackerExample } from '../../scripts/timetracker/run.js'
import { ADMIN_GROUP } from '../../scripts/demo/idp.js'
import { MESSAGES } from '../../src/pages/login.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const checkout = process.env.TIMETRACKER_DIR
const found = checkout !== undefined && existsSync(checkout + '/app/__init__.py') ? checkout : undefined
const python = findPython('import flask_login, flask_sqlalchemy, flask_migrate, flask_socketio, flask_babel, authlib, eventlet, gunicorn')
const assetsMissing = missingLocalAssets()

if (requireChromium(t) &&
    requireTool(t, 'a TimeTracker checkout in TIMETRACKER_DIR', found, 'set TIMETRACKER_DIR to a TimeTracker checkout') &&
    requireTool(t, "python3 with TimeTracker's packages", python, 'see docs/TIMETRACKER.md for the Debian packages') &&
    requireTool(t, "local copies of TimeTracker's CDN assets", assetsMissing.length === 0 ? 'found' : undefined, `missing ${assetsMissing.join(', ')}: apt-get install ${LOCAL_ASSET_PACKAGES}`)) {
  // TimeTracker's own ADMIN_USERNAMES names `admin` (its default, set here to make it plain): only
  // the gateway's say must count.
  const example = await startTimeTrackerExample({ checkout: found, python, env: {}, logLevel: 'silent', timetrackerEnv: { ADMIN_USERNAMES: 'admin' } })
  // Closed in reverse: the browsers first, as a socket one opened ahead of time would hold a server's close.
  const closers: Array<() => Promise<void>> = [example.close]
  t.teardown(async () => {
    // On a failure, what TimeTracker said (its log goes with the example's temporary directory).
    if (!t.passing()) process.stderr.write(`TimeTracker's log, last lines:\n${readFileSync(example.timetrackerLog, 'utf8').split('\n').slice(-40).join('\n')}\n`)
    for (const close of closers.reverse()) await close()
  })
  // Two browsers: two users at once, with nothing shared (cookies, Socket.IO connections).
  const browser: TestBrowser = await launchBrowser()
  closers.push(browser.close)
  const other: TestBrowser = await launchBrowser()
  closers.push(other.close)
  const cdn = [await serveCdnLocally(browser.context), await serveCdnLocally(other.context)]

  const gateway = new URL(example.url).origin
  const at = (path: string): string => gateway + path
  const account = (username: string): { username: string, password: string, name: string } => {
    const local = example.localAccounts.find((a) => a.username === username)
    if (local !== undefined) return { username, password: local.password, name: local.fullName }
    const sso = example.accounts.find((a) => a.username === username)!
    return { username, password: sso.password, name: sso.name }
  }
  const admin = account('admin')
  const dave = account('dave')
  const alice = account('alice')
  const bob = account('bob')

  const isLoginPage = (url: URL): boolean => url.origin === gateway && url.pathname === '/login'
  /** Sign in with the gateway's form (the page must be on the login page). */
  const submitLocal = async (page: Page, who: { username: string, password: string }): Promise<void> => {
    await page.getByLabel('Username').fill(who.username)
    await page.getByLabel('Password').fill(who.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL((url) => url.origin === gateway && url.pathname !== '/login')
  }
  /** From the gateway's login page through the provider's own form (or straight back, if its session lives). */
  const submitSso = async (page: Page, who: { username: string, password: string }): Promise<void> => {
    await page.getByRole('link', { name: 'Sign in with SSO' }).click()
    await page.waitForURL((url) => url.origin === example.issuer || (url.origin === gateway && url.pathname !== '/login'))
    if (new URL(page.url()).origin === example.issuer) {
      await page.getByLabel('Username').fill(who.username)
      await page.getByLabel('Password').fill(who.password)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.waitForURL((url) => url.origin === gateway && url.pathname !== '/login')
    }
  }
  /** A fresh tab of `b`, signed in (locally or with SSO), on `path`. */
  const signedIn = async (b: TestBrowser, who: { username: string, password: string }, path = '/'): Promise<Page> => {
    const page = await b.freshPage()
    await page.goto(at(path))
    if (isLoginPage(new URL(page.url()))) {
      if (example.localAccounts.some((a) => a.username === who.username)) await submitLocal(page, who)
      else await submitSso(page, who)
    }
    return page
  }
  /** The name in TimeTracker's navbar (its user menu). */
  const navbarUser = async (page: Page): Promise<string> => (await page.locator('#navbarDropdown').textContent() ?? '').trim()
  const alerts = async (page: Page): Promise<string> => (await page.locator('main .alert').allTextContents()).join(' | ').replace(/\s+/g, ' ')
  /** Open TimeTracker's user menu and click its Logout link. */
  const clickLogout = async (page: Page): Promise<void> => {
    await page.locator('#navbarDropdown').click()
    await page.getByRole('link', { name: 'Logout' }).click()
  }
  /** The provider's end-session confirmation, then back at the gateway's login page. */
  const confirmIdpSignOut = async (page: Page): Promise<void> => {
    await page.waitForURL((url) => url.origin === example.issuer)
    await page.getByRole('button', { name: 'Yes, sign me out' }).click()
    await page.waitForURL(isLoginPage)
  }
  /** /admin as the user of `page`: true for TimeTracker's admin dashboard, false when sent back. */
  const adminDashboard = async (t: Test, page: Page): Promise<boolean> => {
    await page.goto(at('/admin'))
    const url = new URL(page.url())
    if (url.pathname === '/admin') {
      t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Admin Dashboard')
      return true
    }
    t.equal(url.pathname, '/dashboard', 'sent back to the dashboard')
    t.match(await alerts(page), 'Administrator access required', "TimeTracker's refusal")
    t.equal(await page.locator('nav a[href="/admin"]').count(), 0, 'no Admin link in the navbar')
    return false
  }

  t.test('local sign-in at the gateway, then TimeTracker\'s dashboard as that user', async (t) => {
    const page = await browser.freshPage()
    const sockets = watchSocketIo(page)
    await page.goto(example.url)
    t.ok(isLoginPage(new URL(page.url())), 'TimeTracker sends a stranger to the gateway\'s login page')
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in')
    await Promise.all([page.waitForEvent('console', (m) => m.text() === 'Connected to server'), submitLocal(page, dave)])
    t.equal(page.url(), example.url)
    t.equal(await page.title(), 'Dashboard - Time Tracker')
    t.equal(await navbarUser(page), dave.name, 'the navbar shows the gateway user\'s full name')
    t.match(await page.locator('main').textContent(), `Welcome back, ${dave.name}`)
    t.equal(await page.locator('nav a[href="/admin"]').count(), 0, 'no Admin link for a non-admin')
    // The page works: its libraries came from the local copies, and its Socket.IO client connected.
    t.same(await page.evaluate('[typeof bootstrap.Modal, typeof jQuery, typeof Chart, typeof io]'), ['function', 'function', 'function', 'function'])
    t.ok(sockets.requests.length > 0, 'Socket.IO requests were made')
    t.ok(await browser.screenshot(page, 'timetracker-dashboard-local'))
  })

  t.test('SSO through the demo provider\'s form, then the dashboard as the SSO user', async (t) => {
    const page = await other.freshPage()
    await page.goto(example.url)
    await page.getByRole('link', { name: 'Sign in with SSO' }).click()
    await page.waitForURL((url) => url.origin === example.issuer)
    t.match(await page.title(), /Demo Identity Provider/, 'the provider\'s own sign-in page')
    await page.getByLabel('Username').fill(alice.username)
    await page.getByLabel('Password').fill(alice.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(example.url)
    t.equal(await page.title(), 'Dashboard - Time Tracker')
    t.equal(await navbarUser(page), alice.name)
    t.match(await page.locator('main').textContent(), `Welcome back, ${alice.name}`)
    t.equal(await page.locator('nav a[href="/admin"]').count(), 1, `the ${ADMIN_GROUP} group made alice TimeTracker's admin`)
    t.ok(await other.screenshot(page, 'timetracker-dashboard-sso'))
  })

  t.test('the admin pages are for the gateway\'s administrators only', async (t) => {
    const page = await signedIn(browser, admin)
    await page.locator('nav a[href="/admin"]').click()
    await page.waitForURL(at('/admin'))
    t.equal(await adminDashboard(t, page), true, 'the local admin account sees /admin')
    t.ok(await browser.screenshot(page, 'timetracker-admin'))
    t.equal(await adminDashboard(t, await signedIn(other, alice)), true, 'the SSO admin (group) sees /admin')
    t.equal(await adminDashboard(t, await signedIn(browser, dave)), false, 'a non-admin is sent back')
  })

  t.test("a timer started and stopped in TimeTracker's UI: its Socket.IO events reach that user only, through the gateway", async (t) => {
    // A client and a project, made by the admin in TimeTracker's own forms.
    const adminPage = await signedIn(browser, admin, '/clients/create')
    await adminPage.getByLabel('Client Name').fill('Acme Ltd')
    await adminPage.getByRole('button', { name: 'Create Client' }).click()
    await adminPage.waitForURL(/\/clients\/\d+$/)
    await adminPage.goto(at('/projects/create'))
    await adminPage.getByLabel('Project Name').fill('Website relaunch')
    await adminPage.locator('#client_id').selectOption({ label: 'Acme Ltd' })
    await adminPage.getByRole('button', { name: 'Create Project' }).click()
    await adminPage.waitForURL(/\/projects\/\d+$/)
    const projectId = /\/projects\/(\d+)$/.exec(adminPage.url())![1]!
    t.match(await alerts(adminPage), 'Project "Website relaunch" created successfully')

    /** A dashboard tab whose Socket.IO client has connected, and what reaches it. */
    const dashboard = async (page: Page): Promise<ReturnType<typeof watchSocketIo>> => {
      const sockets = watchSocketIo(page)
      await Promise.all([page.waitForEvent('console', (m) => m.text() === 'Connected to server'), page.goto(example.url)])
      return sockets
    }
    const toasts = (page: Page): Promise<string[]> => page.locator('#toast-container .toast-body').allTextContents()

    // Dave works in one tab and watches another; alice, in the other browser, watches hers.
    const daveWorks = await signedIn(browser, dave)
    const daveWatches = await browser.context.newPage()
    const daveSockets = await dashboard(daveWatches)
    const aliceWatches = await signedIn(other, alice)
    const aliceSockets = await dashboard(aliceWatches)

    await daveWorks.getByRole('button', { name: 'Start Timer' }).click()
    const modal = daveWorks.locator('#startTimerModal')
    await modal.locator('#project_id').selectOption({ label: 'Website relaunch (Acme Ltd)' })
    await modal.getByRole('button', { name: 'Start Timer' }).click()
    await daveWorks.waitForURL(at('/dashboard'))
    t.match(await alerts(daveWorks), 'Timer started for Website relaunch')
    await daveWatches.locator('#toast-container .toast-body', { hasText: 'Timer started for Website relaunch' }).first().waitFor({ state: 'attached' })
    t.pass('dave\'s other tab shows TimeTracker\'s "Timer started" toast')
    t.ok(await browser.screenshot(daveWatches, 'timetracker-timer-toast'))

    await daveWorks.getByRole('button', { name: 'Stop Timer' }).click()
    await daveWorks.waitForURL(at('/dashboard'))
    t.match(await alerts(daveWorks), 'Timer stopped. Duration:')
    await daveWatches.locator('#toast-container .toast-body', { hasText: 'Timer stopped. Duration:' }).first().waitFor({ state: 'attached' })
    t.pass('and the "Timer stopped" toast')
    t.same(daveSockets.events.filter((e) => e.startsWith('timer_')), ['timer_started', 'timer_stopped'], 'both events reached dave')

    // Everything the Socket.IO client did went to the gateway's origin, never to TimeTracker's.
    t.ok(daveSockets.requests.length > 0 && daveSockets.websockets.length > 0, 'long-polls and a WebSocket')
    t.same(hostsOf(daveSockets.requests), [new URL(gateway).host], 'Socket.IO requests went to the gateway')
    t.same(hostsOf(daveSockets.websockets), [new URL(gateway).host], 'the WebSocket too')

    // Alice was connected all along and got none of dave's events; her own reach her, not dave.
    t.same(aliceSockets.events, [], 'alice\'s connection received none of dave\'s events')
    t.same(await toasts(aliceWatches), [], 'and she saw no toast')
    const aliceWorks = await other.context.newPage()
    await aliceWorks.goto(at(`/timer/start/${projectId}`)) // TimeTracker's start link
    await aliceWatches.locator('#toast-container .toast-body', { hasText: 'Timer started for Website relaunch' }).first().waitFor({ state: 'attached' })
    await aliceWorks.getByRole('button', { name: 'Stop Timer' }).click()
    await aliceWatches.locator('#toast-container .toast-body', { hasText: 'Timer stopped' }).first().waitFor({ state: 'attached' })
    t.same(aliceSockets.events.filter((e) => e.startsWith('timer_')), ['timer_started', 'timer_stopped'], 'alice\'s own events reach her connection')
    t.same(daveSockets.events.filter((e) => e.startsWith('timer_')), ['timer_started', 'timer_stopped'], 'and not dave\'s')
  })

  t.test('a user an admin disables in TimeTracker gets "Account disabled", and its Sign out link signs out', async (t) => {
    const bobPage = await signedIn(other, bob)
    t.equal(await navbarUser(bobPage), bob.name)

    const adminPage = await signedIn(browser, admin, '/admin/users')
    await adminPage.getByRole('row', { name: new RegExp(bob.name) }).getByTitle('Edit').click()
    await adminPage.waitForURL(/\/admin\/users\/\d+\/edit$/)
    await adminPage.getByLabel('Active').uncheck()
    await adminPage.getByRole('button', { name: 'Update User' }).click()
    await adminPage.waitForURL(at('/admin/users'))
    t.match(await alerts(adminPage), `User "${bob.username}" updated successfully`)

    const response = await bobPage.goto(example.url)
    t.equal(response?.status(), 403)
    t.equal(await bobPage.getByRole('heading', { level: 1 }).textContent(), 'Account disabled')
    t.ok(await other.screenshot(bobPage, 'timetracker-account-disabled'))
    await bobPage.getByRole('link', { name: 'Sign out' }).click()
    await confirmIdpSignOut(bobPage) // bob signed in with SSO: his provider session ends too
    t.equal((await bobPage.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
    await bobPage.goto(example.url)
    t.ok(isLoginPage(new URL(bobPage.url())), 'signed out: TimeTracker is behind the login page again')
  })

  t.test("TimeTracker's own Logout link ends the gateway session and TimeTracker's", async (t) => {
    t.test('a local account', async (t) => {
      const page = await signedIn(browser, dave)
      const session = (await browser.context.cookies(example.url)).find((c) => c.name === 'session')
      t.ok(session, "TimeTracker's own session cookie")
      await clickLogout(page)
      await page.waitForURL(isLoginPage)
      t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut, 'one click, at the gateway\'s login page')
      await page.goto(at('/projects'))
      t.ok(isLoginPage(new URL(page.url())), 'a TimeTracker URL lands on the login page again')
      t.equal(new URL(page.url()).searchParams.get('next'), '/projects')
      // TimeTracker's cookie alone is worth nothing: not directly, not through the gateway.
      const direct = await fetch(example.timetrackerUrl + '/', { headers: { cookie: `session=${session!.value}` }, redirect: 'manual' })
      t.equal(direct.status, 401, 'replayed directly to TimeTracker: 401')
      const proxied = await fetch(example.url, { headers: { cookie: `session=${session!.value}`, accept: 'text/html' }, redirect: 'manual' })
      t.equal(proxied.status, 302, 'through the gateway without its session: to the login page')
      t.match(proxied.headers.get('location'), /^\/login/)
    })

    t.test('an SSO account: the provider session ends too', async (t) => {
      const page = await signedIn(other, alice)
      t.equal(await navbarUser(page), alice.name)
      const session = (await other.context.cookies(example.url)).find((c) => c.name === 'session')
      await clickLogout(page)
      await confirmIdpSignOut(page)
      t.equal((await page.getByRole('status').textContent())?.trim(), MESSAGES.signedOut)
      await page.goto(example.url)
      t.ok(isLoginPage(new URL(page.url())), 'TimeTracker is behind the login page again')
      const direct = await fetch(example.timetrackerUrl + '/', { headers: { cookie: `session=${session!.value}` }, redirect: 'manual' })
      t.equal(direct.status, 401, "TimeTracker's cookie replayed directly: 401")
      await page.getByRole('link', { name: 'Sign in with SSO' }).click()
      await page.waitForURL((url) => url.origin === example.issuer)
      t.ok(await page.getByLabel('Password').isVisible(), 'signing in again asks the provider\'s password')
    })
  })

  t.test('a demotion holds from the next request', async (t) => {
    t.test("the CLI's `users set-admin admin false` (the name TimeTracker's ADMIN_USERNAMES promotes)", async (t) => {
      const page = await signedIn(browser, admin)
      t.equal(await adminDashboard(t, page), true, 'admin before')
      const cli = spawnSync('npx', ['tsx', 'src/cli/bin.ts', 'users', 'set-admin', admin.username, 'false'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: example.databaseUrl },
        encoding: 'utf8',
        timeout: 30_000
      })
      t.equal(cli.status, 0, cli.stderr)
      t.match(cli.stdout, 'no longer an administrator')
      // The gateway refuses the session within 5 seconds.
      const deadline = Date.now() + 5000
      let ended = false
      while (!ended && Date.now() < deadline) {
        await page.goto(at('/admin'))
        ended = isLoginPage(new URL(page.url()))
        if (!ended) await page.waitForTimeout(250)
      }
      t.ok(ended, 'the session ended within 5 s: back at the login page')
      await submitLocal(page, admin)
      t.equal(await adminDashboard(t, page), false, 'signed in again, TimeTracker refuses /admin')
      t.ok(await browser.screenshot(page, 'timetracker-admin-refused'))
    })

    t.test('alice removed from the admin group at the provider', async (t) => {
      const entry = example.accounts.find((a) => a.username === alice.username)!
      const page = await signedIn(other, alice)
      t.equal(await adminDashboard(t, page), true, 'admin before')
      entry.groups = entry.groups.filter((g) => g !== ADMIN_GROUP)
      await clickLogout(page)
      await confirmIdpSignOut(page)
      await submitSso(page, alice)
      t.equal(await navbarUser(page), alice.name)
      t.equal(await adminDashboard(t, page), false, 'signed in again, TimeTracker refuses /admin')
    })
  })

  t.test('what the pages asked the internet for', async (t) => {
    const served = cdn.flatMap((c) => c.served)
    const emptied = cdn.flatMap((c) => c.emptied)
    t.comment(`served locally: ${hostsOf(served).join(', ')}; answered empty: ${[...new Set(emptied.map((u) => u.split('?')[0]))].join(', ') || 'none'}`)
    t.ok(served.some((u) => u.includes('/socket.io/')), 'the Socket.IO client came from the local copy')
    t.ok(served.some((u) => u.includes('bootstrap')), 'Bootstrap too')
    t.same(cdn.flatMap((c) => c.pageErrors), [], 'no page had a JavaScript error')
  })
}
