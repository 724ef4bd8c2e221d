// A browser without JavaScript for the second factor's tests: cookies kept, forms posted, the
// password step, TOTP enrolment through the account page (which asks for the password again) and
// the second step.
import type { Test } from 'tap'
import type { TestGateway } from './gateway.js'
import type { TestClock } from './clock.js'
import { totpCode } from './totp.js'
import { cookieHeader, csrfTokenFrom, http, setCookies, type Response } from './http.js'
import { hashPassword } from '../../src/auth/local/password.js'

export const PASSWORD = 'correct horse battery staple'
export const HTML = 'text/html,application/xhtml+xml'

/** A browser without JavaScript: its cookies, and forms posted with them. */
export class Browser {
  cookies: Record<string, string> = {}
  constructor (readonly base: string) {}
  async get (path: string, headers: Record<string, string> = { accept: HTML }): Promise<Response> {
    const res = await http(this.base + path, { headers: { ...headers, cookie: cookieHeader(this.cookies) } })
    this.cookies = { ...this.cookies, ...setCookies(res.headers) }
    return res
  }

  async post (path: string, fields: Record<string, string>): Promise<Response> {
    const res = await http(this.base + path, {
      method: 'POST',
      headers: { accept: HTML, 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(this.cookies) },
      body: new URLSearchParams(fields).toString()
    })
    this.cookies = { ...this.cookies, ...setCookies(res.headers) }
    return res
  }

  /** The password step: the login page's CSRF token, then the form. */
  async signIn (username: string, next = '/', password = PASSWORD): Promise<Response> {
    const page = await this.get('/login?next=' + encodeURIComponent(next))
    return await this.post('/login', { username, password, csrf_token: csrfTokenFrom(page.body), next })
  }

  /** The account page's CSRF token (signed in). */
  async accountCsrf (): Promise<string> {
    const page = await this.get('/_authgate/account')
    if (page.status !== 200) throw new Error(`account page: ${page.status}`)
    return csrfTokenFrom(page.body)
  }
}

export const mfaTokenFrom = (html: string): string => /name="mfa_token" value="([\w-]{43})"/.exec(html)?.[1] ?? ''
export const secretFrom = (html: string): string => /data-totp-secret="([A-Z2-7]+)"/.exec(html)?.[1] ?? ''
export const recoveryCodesFrom = (html: string): string[] => [...html.matchAll(/data-recovery-code="([a-z2-9-]+)"/g)].map((m) => m[1]!)

export async function addUser (gw: TestGateway, username: string): Promise<void> {
  await gw.users.create({ username, passwordHash: await hashPassword(PASSWORD) })
}

/** Sign in with the password alone, enrol TOTP through the account page; the secret and recovery codes. */
export async function enrol (t: Test, gw: TestGateway, clock: TestClock, username: string): Promise<{ secret: string, codes: string[], browser: Browser }> {
  const browser = new Browser(gw.url)
  const signedIn = await browser.signIn(username)
  t.equal(signedIn.status, 303, 'no factor yet: the password signs in')
  const begun = await browser.post('/_authgate/account/totp', { csrf_token: await browser.accountCsrf(), password: PASSWORD })
  t.equal(begun.status, 200)
  const secret = secretFrom(begun.body)
  const confirmed = await browser.post('/_authgate/account/totp/confirm', { csrf_token: csrfTokenFrom(begun.body), code: totpCode(secret, clock.now()) })
  t.equal(confirmed.status, 200)
  // The step just used at enrolment is spent: the next sign-in needs the next step's code.
  clock.advance(30_000)
  return { secret, codes: recoveryCodesFrom(confirmed.body), browser }
}

/** Both steps: the second-step page's token, then the code. */
export async function signInWithCode (browser: Browser, username: string, code: string, next = '/'): Promise<{ first: Response, second: Response }> {
  const first = await browser.signIn(username, next)
  const second = await browser.post('/login/mfa', { csrf_token: csrfTokenFrom(first.body), mfa_token: mfaTokenFrom(first.body), code, next })
  return { first, second }
}
