/**
 * Browser-less helpers for driving redirect/form based login flows with plain
 * `fetch` (undici): a small cookie jar, a fetch wrapper that uses it, a tiny
 * HTML form parser, and two flow walkers for the OpenID Provider fixture
 * (sign-in and RP-initiated logout).
 *
 * Nothing here executes JavaScript: the flows only work against pages that
 * are plain HTML forms, which is exactly what test/support/oidc-provider.ts
 * renders (and what oidc-provider's own end-session pages are).
 */

/** One stored cookie (RFC 6265 §5.3 storage model, reduced to what tests need). */
export interface StoredCookie {
  name: string
  value: string
  /** Lower-cased host name (no port: like browsers, cookies ignore ports). */
  domain: string
  /** true when the cookie had no Domain attribute (sent to `domain` only). */
  hostOnly: boolean
  path: string
  /** Expiry as epoch milliseconds; undefined for a session cookie. */
  expires: number | undefined
  secure: boolean
  httpOnly: boolean
  sameSite: string | undefined
}

export interface CookieJarOptions {
  /**
   * Send `Secure` cookies over plain http to loopback hosts (localhost,
   * 127.0.0.0/8, ::1), as Chrome and Firefox do because they treat loopback as
   * a secure context. Default true. Set false to behave like a strict client.
   */
  loopbackIsSecure?: boolean
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i
const IP_ADDRESS = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i

/**
 * A minimal cookie jar. Honours Domain (host-only vs domain cookies), Path,
 * Max-Age (which wins over Expires), Expires and Secure. Cookies are keyed by
 * host name only, so, as in a real browser, a cookie set by the IdP on
 * 127.0.0.1:A is also sent to the gateway on 127.0.0.1:B. SameSite is stored
 * but not enforced (every request made through the jar counts as same-site
 * top-level navigation, which is what a browser does for these redirects).
 */
export class CookieJar {
  readonly #cookies = new Map<string, StoredCookie>()
  readonly #loopbackIsSecure: boolean

  constructor (options: CookieJarOptions = {}) {
    this.#loopbackIsSecure = options.loopbackIsSecure ?? true
  }

  /** Stores every Set-Cookie header of `response`, received from `url`. */
  storeFromResponse (url: string | URL, response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      this.setCookie(url, header)
    }
  }

  /** Parses one Set-Cookie header value received from `url` and stores it. */
  setCookie (url: string | URL, setCookieHeader: string): void {
    const requestUrl = new URL(url)
    const host = hostName(requestUrl)
    const [pair = '', ...attributes] = setCookieHeader.split(';')
    const eq = pair.indexOf('=')
    if (eq <= 0) return // no name: ignored, as browsers do
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()

    let domain = host
    let hostOnly = true
    let path: string | undefined
    let maxAge: number | undefined
    let expires: number | undefined
    let secure = false
    let httpOnly = false
    let sameSite: string | undefined

    for (const attribute of attributes) {
      const i = attribute.indexOf('=')
      const key = (i === -1 ? attribute : attribute.slice(0, i)).trim().toLowerCase()
      const val = i === -1 ? '' : attribute.slice(i + 1).trim()
      switch (key) {
        case 'domain': {
          const d = val.replace(/^\./, '').toLowerCase()
          if (d === '') break
          // A Domain attribute that does not cover the request host is a
          // rejected cookie (RFC 6265 §5.3 step 6); an IP must match exactly.
          if (!domainMatches(host, d)) return
          domain = d
          hostOnly = false
          break
        }
        case 'path':
          if (val.startsWith('/')) path = val
          break
        case 'max-age':
          if (/^-?\d+$/.test(val)) maxAge = Number(val)
          break
        case 'expires': {
          const t = Date.parse(val)
          if (!Number.isNaN(t)) expires = t
          break
        }
        case 'secure':
          secure = true
          break
        case 'httponly':
          httpOnly = true
          break
        case 'samesite':
          sameSite = val.toLowerCase()
          break
        default:
          break
      }
    }

    const expiry = maxAge !== undefined ? Date.now() + maxAge * 1000 : expires
    const cookie: StoredCookie = {
      name,
      value,
      domain,
      hostOnly,
      path: path ?? defaultPath(requestUrl.pathname),
      expires: expiry,
      secure,
      httpOnly,
      sameSite
    }
    const key = storageKey(cookie)
    if (expiry !== undefined && expiry <= Date.now()) {
      // Max-Age=0 / past Expires is how servers delete cookies.
      this.#cookies.delete(key)
    } else {
      this.#cookies.set(key, cookie)
    }
  }

  /** Cookies that a browser would send to `url`, most specific path first. */
  cookiesFor (url: string | URL): StoredCookie[] {
    const target = new URL(url)
    const host = hostName(target)
    const secureChannel =
      target.protocol === 'https:' || (this.#loopbackIsSecure && LOOPBACK.test(host))
    this.#purgeExpired()
    return [...this.#cookies.values()]
      .filter((c) => (c.hostOnly ? c.domain === host : domainMatches(host, c.domain)))
      .filter((c) => pathMatches(target.pathname, c.path))
      .filter((c) => !c.secure || secureChannel)
      .sort((a, b) => b.path.length - a.path.length)
  }

  /** The Cookie request header for `url`, or undefined when nothing applies. */
  cookieHeader (url: string | URL): string | undefined {
    const cookies = this.cookiesFor(url)
    return cookies.length ? cookies.map((c) => `${c.name}=${c.value}`).join('; ') : undefined
  }

  /** Value of the cookie `name` that would be sent to `url`. */
  get (url: string | URL, name: string): string | undefined {
    return this.cookiesFor(url).find((c) => c.name === name)?.value
  }

  /** Every live cookie, whatever its host. */
  all (): StoredCookie[] {
    this.#purgeExpired()
    return [...this.#cookies.values()]
  }

  /** Forgets every cookie named `name` (on any host and path). */
  delete (name: string): void {
    for (const [key, cookie] of this.#cookies) {
      if (cookie.name === name) this.#cookies.delete(key)
    }
  }

  clear (): void {
    this.#cookies.clear()
  }

  #purgeExpired (): void {
    const now = Date.now()
    for (const [key, cookie] of this.#cookies) {
      if (cookie.expires !== undefined && cookie.expires <= now) this.#cookies.delete(key)
    }
  }
}

function hostName (url: URL): string {
  return url.hostname.toLowerCase()
}

function storageKey (c: Pick<StoredCookie, 'domain' | 'path' | 'name'>): string {
  return `${c.domain}\u0000${c.path}\u0000${c.name}`
}

function domainMatches (host: string, domain: string): boolean {
  if (host === domain) return true
  if (IP_ADDRESS.test(host)) return false
  return host.endsWith(`.${domain}`)
}

/** RFC 6265 §5.1.4 default-path: the "directory" of the request path. */
function defaultPath (requestPath: string): string {
  if (!requestPath.startsWith('/')) return '/'
  const lastSlash = requestPath.lastIndexOf('/')
  return lastSlash <= 0 ? '/' : requestPath.slice(0, lastSlash)
}

/** RFC 6265 §5.1.4 path-match. */
function pathMatches (requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true
  if (!requestPath.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || requestPath.charAt(cookiePath.length) === '/'
}

/**
 * `fetch` that sends the jar's cookies, stores the response's Set-Cookie
 * headers, and never follows redirects (callers inspect each 3xx themselves).
 * An explicit `cookie` header in `init.headers` replaces the jar's.
 */
export async function fetchWithJar (
  jar: CookieJar,
  url: string | URL,
  init: RequestInit = {}
): Promise<Response> {
  const headers = new Headers(init.headers)
  if (!headers.has('cookie')) {
    const cookie = jar.cookieHeader(url)
    if (cookie !== undefined) headers.set('cookie', cookie)
  }
  const response = await fetch(url, { ...init, headers, redirect: 'manual' })
  jar.storeFromResponse(url, response)
  return response
}

/** A form found in an HTML page by {@link parseForms}. */
export interface HtmlForm {
  id: string | undefined
  /** Absolute action URL (the page URL when the form has no action). */
  action: string
  /** Upper-cased method, GET or POST. */
  method: string
  /** name → value of every named <input> / <textarea> / <select> (first option or selected). */
  fields: Record<string, string>
  /** Names of every field, in document order (including ones with empty values). */
  fieldNames: string[]
  /** Named submit buttons belonging to this form (inside it, or pointing at it with form="id"). */
  buttons: Array<{ name: string, value: string }>
}

/**
 * Extracts the forms of a simple HTML page with regular expressions. Good
 * enough for server-rendered test pages (ours, oidc-provider's, the gateway's
 * login page); not an HTML5 parser (no nested forms, no comments handling).
 */
export function parseForms (html: string, pageUrl: string | URL): HtmlForm[] {
  const forms: HtmlForm[] = []
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi
  for (const match of html.matchAll(formRe)) {
    const attrs = parseAttributes(match[1] ?? '')
    const body = match[2] ?? ''
    const fields: Record<string, string> = {}
    const fieldNames: string[] = []
    const buttons: HtmlForm['buttons'] = []

    for (const input of body.matchAll(/<input\b([^>]*)>/gi)) {
      const a = parseAttributes(input[1] ?? '')
      const name = a['name']
      if (name === undefined) continue
      const type = (a['type'] ?? 'text').toLowerCase()
      if (type === 'submit' || type === 'image') {
        buttons.push({ name, value: a['value'] ?? '' })
        continue
      }
      if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue
      fieldNames.push(name)
      fields[name] = a['value'] ?? (type === 'checkbox' ? 'on' : '')
    }
    for (const ta of body.matchAll(/<textarea\b([^>]*)>([\s\S]*?)<\/textarea\s*>/gi)) {
      const name = parseAttributes(ta[1] ?? '')['name']
      if (name === undefined) continue
      fieldNames.push(name)
      fields[name] = decodeEntities(ta[2] ?? '')
    }
    for (const sel of body.matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select\s*>/gi)) {
      const name = parseAttributes(sel[1] ?? '')['name']
      if (name === undefined) continue
      const options = [...(sel[2] ?? '').matchAll(/<option\b([^>]*)>([\s\S]*?)(?=<option\b|$)/gi)]
      const chosen = options.find((o) => 'selected' in parseAttributes(o[1] ?? '')) ?? options[0]
      fieldNames.push(name)
      if (chosen) {
        const a = parseAttributes(chosen[1] ?? '')
        fields[name] = a['value'] ?? decodeEntities((chosen[2] ?? '').replace(/<[^>]*>/g, '').trim())
      } else {
        fields[name] = ''
      }
    }
    for (const button of body.matchAll(/<button\b([^>]*)>/gi)) {
      const a = parseAttributes(button[1] ?? '')
      const type = (a['type'] ?? 'submit').toLowerCase()
      if (type === 'submit' && a['name'] !== undefined && a['form'] === undefined) {
        buttons.push({ name: a['name'], value: a['value'] ?? '' })
      }
    }

    forms.push({
      id: attrs['id'],
      action: new URL(attrs['action'] || String(pageUrl), pageUrl).href,
      method: (attrs['method'] ?? 'GET').toUpperCase(),
      fields,
      fieldNames,
      buttons
    })
  }

  // Buttons outside a form that target it with form="id" (oidc-provider's
  // logout page puts its "Yes, sign me out" button outside the form).
  for (const button of html.matchAll(/<button\b([^>]*)>/gi)) {
    const a = parseAttributes(button[1] ?? '')
    const type = (a['type'] ?? 'submit').toLowerCase()
    if (type !== 'submit' || a['form'] === undefined || a['name'] === undefined) continue
    const target = forms.find((f) => f.id === a['form'])
    target?.buttons.push({ name: a['name'], value: a['value'] ?? '' })
  }
  return forms
}

function parseAttributes (source: string): Record<string, string> {
  const attrs: Record<string, string> = {}
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g
  for (const m of source.matchAll(re)) {
    const name = (m[1] ?? '').toLowerCase()
    if (!name || name in attrs) continue
    attrs[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '')
  }
  return attrs
}

function decodeEntities (text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10)
      return Number.isFinite(code) ? String.fromCodePoint(code) : whole
    }
    return named[entity.toLowerCase()] ?? whole
  })
}

/** Page text without tags, for error messages. */
function textOf (html: string): string {
  return decodeEntities(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
  ).slice(0, 500)
}

export interface FlowOptions {
  /** Give up after this many HTTP requests (default 20). */
  maxSteps?: number
}

interface PageDecision {
  form: HtmlForm
  values: Record<string, string>
}

type PageHandler = (page: { url: string, html: string, forms: HtmlForm[], posts: number }) => PageDecision | 'done'

/**
 * Follows redirects and submits forms while they stay on the origin of
 * `startUrl` (the IdP). Returns the first Location pointing elsewhere (the
 * relying party), or, when `onPage` says 'done', the URL of that page.
 */
async function walkProviderFlow (
  startUrl: string | URL,
  jar: CookieJar,
  onPage: PageHandler,
  what: string,
  options: FlowOptions
): Promise<string> {
  const providerOrigin = new URL(startUrl).origin
  const maxSteps = options.maxSteps ?? 20
  let url = new URL(startUrl).href
  let init: RequestInit = { method: 'GET' }
  let posts = 0

  for (let step = 0; step < maxSteps; step += 1) {
    const response = await fetchWithJar(jar, url, init)
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location')
      await response.body?.cancel()
      if (!location) throw new Error(`${what}: ${response.status} from ${url} without Location`)
      const next = new URL(location, url)
      if (next.origin !== providerOrigin) return next.href
      url = next.href
      init = { method: 'GET' }
      continue
    }

    const html = await response.text()
    const contentType = response.headers.get('content-type') ?? ''
    if (response.status !== 200 || !contentType.includes('html')) {
      throw new Error(`${what}: unexpected ${response.status} (${contentType}) from ${url}: ${textOf(html)}`)
    }
    const forms = parseForms(html, url)
    const decision = onPage({ url, html, forms, posts })
    if (decision === 'done') return url

    const { form, values } = decision
    const body = new URLSearchParams(values)
    if (new URL(form.action).origin !== providerOrigin) {
      // An auto-submitting form towards the RP (response_mode=form_post).
      // Not needed by the gateway, which uses the query response mode.
      throw new Error(`${what}: page ${url} posts to another origin (${form.action}); form_post is not supported`)
    }
    if (form.method === 'POST') {
      url = form.action
      init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }
      posts += 1
    } else {
      const target = new URL(form.action)
      for (const [k, v] of body) target.searchParams.append(k, v)
      url = target.href
      init = { method: 'GET' }
    }
  }
  throw new Error(`${what}: gave up after ${maxSteps} requests (last: ${url})`)
}

export interface Credentials {
  login: string
  password: string
}

/**
 * Drives the OpenID Provider fixture's sign-in: starting from the
 * authorization URL the relying party redirected to, follows the provider's
 * redirects with `jar`, fills and posts the login form (fields `login` and
 * `password`) and any consent form, and returns the Location that points back
 * to the relying party (its redirect_uri with `code`, `state`, `iss`, or an
 * `error`). That URL is not fetched: the caller hits its own gateway with it.
 *
 * When the jar already holds a provider session for the account, no form is
 * shown and the provider redirects straight back; that is fine too.
 * Throws if the provider shows an error page or rejects the credentials.
 */
export async function signInThroughProvider (
  startUrl: string | URL,
  jar: CookieJar,
  credentials: Credentials,
  options: FlowOptions = {}
): Promise<string> {
  let loginPosted = false
  return walkProviderFlow(
    startUrl,
    jar,
    ({ url, html, forms }) => {
      const login = forms.find((f) => f.fieldNames.includes('login') && f.fieldNames.includes('password'))
      if (login) {
        if (loginPosted) {
          throw new Error(`sign-in: the provider showed the login form again (credentials rejected?): ${textOf(html)}`)
        }
        loginPosted = true
        return {
          form: login,
          values: { ...login.fields, login: credentials.login, password: credentials.password }
        }
      }
      const [form] = forms
      if (form) {
        // Consent (or any other confirmation): accept it with its first named
        // button, if any, as a user clicking the default button would.
        const [button] = form.buttons
        return { form, values: { ...form.fields, ...(button ? { [button.name]: button.value } : {}) } }
      }
      throw new Error(`sign-in: page ${url} has no form: ${textOf(html)}`)
    },
    'sign-in',
    options
  )
}

/**
 * Follows an RP-initiated logout: GETs `endSessionUrl` (the IdP's
 * end_session_endpoint with id_token_hint / client_id,
 * post_logout_redirect_uri and state, as the relying party built it), confirms
 * the provider's logout form (hidden `xsrf` plus `logout=yes`, i.e. "sign me
 * out of the IdP too") and returns the final Location: the
 * post_logout_redirect_uri with `state`. Without a post_logout_redirect_uri
 * (or without id_token_hint / client_id to check it against, in which case
 * oidc-provider ignores it) the provider ends on its own "signed out" page and
 * that page's URL is returned instead. An unregistered
 * post_logout_redirect_uri is an error page, which throws.
 */
export async function followEndSession (
  endSessionUrl: string | URL,
  jar: CookieJar,
  options: FlowOptions = {}
): Promise<string> {
  return walkProviderFlow(
    endSessionUrl,
    jar,
    ({ url, html, forms, posts }) => {
      const form = forms.find((f) => 'xsrf' in f.fields)
      if (form && posts === 0) {
        return { form, values: { ...form.fields, logout: 'yes' } }
      }
      if (form) throw new Error(`end-session: the logout form came back after confirming: ${textOf(html)}`)
      if (forms.length === 0 && posts > 0) return 'done'
      throw new Error(`end-session: unexpected page ${url}: ${textOf(html)}`)
    },
    'end-session',
    options
  )
}
