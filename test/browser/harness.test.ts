// The browser tests' own rule: without Chromium they skip with a notice, except under CI, where
// they fail. Checked against a recording stand-in for tap's `t` (so this file itself passes).
import t from 'tap'
import { browserForFile, CHROMIUM_ARGS, chromiumMissingReason, isCI, requireChromium, type TapLike, type TestBrowser } from '../support/browser.js'

function recorder (): TapLike & { calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    fail: (message) => { calls.push(`fail: ${message}`) },
    plan: (n, comment) => { calls.push(`plan ${n}: ${comment ?? ''}`) },
    comment: (...args) => { calls.push(`comment: ${args.join(' ')}`) }
  }
}

t.test('absent Chromium: skipped with the reason outside CI', async (t) => {
  const r = recorder()
  t.equal(requireChromium(r, { path: '/nonexistent/chromium', ci: false }), false)
  t.same(r.calls, [
    'comment: SKIPPING browser tests: Chromium not found at /nonexistent/chromium; install Debian\'s package: apt-get install -y chromium',
    'plan 0: Chromium not found at /nonexistent/chromium; install Debian\'s package: apt-get install -y chromium'
  ])
})

t.test('absent Chromium: a failure under CI', async (t) => {
  const r = recorder()
  t.equal(requireChromium(r, { path: '/nonexistent/chromium', ci: true }), false)
  t.equal(r.calls.length, 1)
  t.match(r.calls[0], /^fail: Chromium not found at \/nonexistent\/chromium.*CI is set/)
})

t.test('present: runs, whatever CI says', async (t) => {
  const r = recorder()
  // Any executable stands in for the browser here: only its presence is decided.
  t.equal(requireChromium(r, { path: process.execPath, ci: true }), true)
  t.same(r.calls, [])
  t.equal(chromiumMissingReason(process.execPath), undefined)
})

t.test('CI detection and launch flags', async (t) => {
  const before = process.env.CI
  t.teardown(() => { if (before === undefined) delete process.env.CI; else process.env.CI = before })
  for (const [value, expected] of [['true', true], ['1', true], ['false', false], ['0', false], ['', false]] as const) {
    process.env.CI = value
    t.equal(isCI(), expected, `CI=${value}`)
  }
  delete process.env.CI
  t.equal(isCI(), false, 'CI unset')
  for (const flag of ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']) {
    t.ok(CHROMIUM_ARGS.includes(flag), flag)
  }
})

t.test('browserForFile: at the file\'s end the browser closes first, then the servers, last registered first', async (t) => {
  const closed: string[] = []
  let teardown: (() => Promise<void>) | undefined
  const standIn = { close: async () => { closed.push('browser') } } as unknown as TestBrowser
  const { browser, closeWithFile } = await browserForFile({ teardown: (fn) => { teardown = fn } }, async () => standIn)
  t.equal(browser, standIn)
  closeWithFile(async () => { closed.push('upstream') })
  closeWithFile(() => { closed.push('provider') })
  closeWithFile(async () => { closed.push('gateway') })
  t.same(closed, [], 'nothing closed before the file ends')
  await teardown!()
  t.same(closed, ['browser', 'gateway', 'provider', 'upstream'])
})
