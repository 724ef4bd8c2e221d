// A real Chromium for end-to-end tests, driven by playwright-core. Only Debian's `chromium` package
// (/usr/bin/chromium) is used, never a downloaded browser. Where it is absent the browser tests skip
// with a notice on a developer machine, and fail under CI=true (where .ci/run installs it).
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Headless, offline apart from what the test opens, and with nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', // root in a container: the setuid sandbox is unavailable
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic'
]

/** Screenshots land here (git-ignored). */
export const ARTIFACTS_DIR = new URL('../artifacts/', import.meta.url).pathname

export function isCI (): boolean {
  const ci = process.env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}

export function chromiumMissingReason (path = CHROMIUM_PATH): string | undefined {
  try {
    accessSync(path, constants.X_OK)
    return undefined
  } catch {
    return `Chromium not found at ${path}; install Debian's package: apt-get install -y chromium`
  }
}

export interface TapLike {
  fail: (message: string) => unknown
  plan: (n: number, comment?: string) => void
  comment: (...args: unknown[]) => void
}

/**
 * Whether this test file can run. Without Chromium: under CI a failure (the browser tests are part
 * of the gate), elsewhere a skipped plan with the reason.
 */
export function requireChromium (t: TapLike, options: { path?: string, ci?: boolean } = {}): boolean {
  const missing = chromiumMissingReason(options.path)
  if (missing === undefined) return true
  if (options.ci ?? isCI()) {
    t.fail(`${missing} (CI is set, so the browser tests may not be skipped)`)
  } else {
    t.comment(`SKIPPING browser tests: ${missing}`)
    t.plan(0, missing)
  }
  return false
}

export interface TestBrowser {
  context: BrowserContext
  /** A new tab with no cookies from earlier tests. */
  freshPage: (viewport?: { width: number, height: number }) => Promise<Page>
  /** Save a full-page screenshot as test/artifacts/<name>.png; returns the path. */
  screenshot: (page: Page, name: string) => Promise<string>
  close: () => Promise<void>
}

export const DESKTOP = { width: 1280, height: 800 }
export const MOBILE = { width: 390, height: 844 }

/** Launch Chromium with a fresh user-data-dir of its own, removed again by close(). */
export async function launchBrowser (): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'authgate-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
    locale: 'en-US',
    // Fail fast and clearly rather than at tap's file timeout.
    timeout: 30_000
  })
  context.setDefaultTimeout(10_000)
  context.setDefaultNavigationTimeout(15_000)
  // The persistent context opens one blank tab; tests use their own.
  for (const p of context.pages()) await p.close()
  return {
    context,
    freshPage: async (viewport = DESKTOP) => {
      await context.clearCookies()
      for (const p of context.pages()) await p.close()
      const page = await context.newPage()
      await page.setViewportSize(viewport)
      return page
    },
    screenshot: async (page, name) => {
      mkdirSync(ARTIFACTS_DIR, { recursive: true })
      const path = join(ARTIFACTS_DIR, `${name}.png`)
      await page.screenshot({ path, fullPage: true })
      return path
    },
    close: async () => {
      await context.close()
      rmSync(userDataDir, { recursive: true, force: true })
    }
  }
}

export interface BrowserFile {
  browser: TestBrowser
  /**
   * Close this with the file, after the browser; what was registered last is closed first (a
   * gateway before the upstream and the provider it talks to).
   */
  closeWithFile: (close: () => Promise<void> | void) => void
}

/**
 * A Chromium for a whole test file, and the servers it drives. Closed at the file's end: the browser
 * first (a socket it opened ahead of time and never used would hold a server's close until Node's
 * 60 s header timeout), then each registered server in reverse order.
 */
export async function browserForFile (t: { teardown: (fn: () => Promise<void>) => void }, launch: () => Promise<TestBrowser> = launchBrowser): Promise<BrowserFile> {
  const browser = await launch()
  const closers: Array<() => Promise<void> | void> = []
  t.teardown(async () => {
    await browser.close()
    for (const close of closers.reverse()) await close()
  })
  return { browser, closeWithFile: (close) => { closers.push(close) } }
}

/** Console reports of anything the page's Content-Security-Policy refused (should stay empty). */
export function collectCspViolations (page: Page): string[] {
  const violations: string[] = []
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text())
  })
  return violations
}

// The page-side helpers below are strings: the project compiles without the DOM library.

/** Some computed style properties of the first element matching `selector` (or the focused one). */
export async function styleOf (page: Page, selector: string, properties: string[]): Promise<Record<string, string>> {
  return await page.evaluate(`(() => {
    const selector = ${JSON.stringify(selector)}
    const el = selector === ':focus' ? document.activeElement : document.querySelector(selector)
    if (el === null) throw new Error('no element ' + selector)
    const style = getComputedStyle(el)
    return Object.fromEntries(${JSON.stringify(properties)}.map((p) => [p, style.getPropertyValue(p)]))
  })()`)
}

/** The focused element's id (or tag name), as a keyboard user would find it. */
export async function focusedId (page: Page): Promise<string> {
  return await page.evaluate(`(() => {
    const el = document.activeElement
    return el === null ? '' : el.id !== '' ? el.id : el.tagName.toLowerCase()
  })()`)
}

/** The text of the element(s) an element's aria-describedby points at: what a screen reader adds. */
export async function describedBy (page: Page, selector: string): Promise<string> {
  return await page.evaluate(`(() => {
    const ids = (document.querySelector(${JSON.stringify(selector)})?.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean)
    return ids.map((id) => document.getElementById(id)?.textContent ?? '').join(' ').trim()
  })()`)
}

/** Page width beyond the viewport (0: no horizontal scrolling). */
export async function horizontalOverflow (page: Page): Promise<number> {
  return await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')
}
