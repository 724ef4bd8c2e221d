// The gateway's own pages over HTTP: security headers, branding, notices and the guarantees the
// browser tests build on (no scripts, no inline styles, everything escaped). Runs without a browser.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { MESSAGES } from '../../src/pages/login.js'
import { configRefusal } from '../support/config.js'

const LOGO_FILE = new URL('../fixtures/logo.svg', import.meta.url).pathname
const HTML = { accept: 'text/html' }
const OIDC = {
  OIDC_ISSUER: 'http://127.0.0.1:9/',
  OIDC_CLIENT_ID: 'authgate',
  OIDC_CLIENT_SECRET: 'not-used-in-these-tests',
  OIDC_REDIRECT_URI: 'http://127.0.0.1:9/auth/oidc/callback'
}

/** What every gateway page must be: scriptless, no inline style, strict CSP, the usual headers. */
function assertGatewayPage (t: Test, res: { headers: Record<string, unknown>, body: string }, what: string): void {
  const csp = String(res.headers['content-security-policy'] ?? '')
  t.match(csp, /default-src 'none'/, `${what}: CSP default-src 'none'`)
  t.match(csp, /style-src 'self'(;|$)/, `${what}: styles from self only`)
  t.notMatch(csp, /unsafe-inline|script-src/, `${what}: no inline and no scripts allowed`)
  t.match(csp, /frame-ancestors 'none'/, `${what}: not framable`)
  t.equal(res.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  t.equal(res.headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options`)
  t.equal(res.headers['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`)
  t.equal(res.headers['cache-control'], 'no-store', `${what}: not cached`)
  t.match(res.body, /^<!doctype html>\n<html lang="en">/, `${what}: doctype and lang`)
  t.notMatch(res.body, /<script|\sstyle=|\son[a-z]+=|<style/i, `${what}: no script, no inline style or handler`)
  t.match(res.body, /<link rel="stylesheet" href="\/_authgate\/static\/authgate.css">/, `${what}: the one stylesheet`)
  t.match(res.body, /<link rel="icon" href="\/_authgate\/static\/favicon.svg" type="image\/svg\+xml">/, `${what}: the gateway's own icon`)
  t.notMatch(res.body, /https?:\/\//, `${what}: no external asset`)
}

t.test('login page: local form, labels, headers', async (t) => {
  const gw = await startGateway({ LOCAL_AUTH: 'password', APP_NAME: 'TimeTracker' })
  t.teardown(gw.close)
  const res = await http(`${gw.url}/login?next=%2Fprojects%2F1`, { headers: HTML })
  t.equal(res.status, 200)
  assertGatewayPage(t, res, 'login')
  t.match(res.body, '<title>Sign in · TimeTracker</title>')
  t.match(res.body, '<label for="username">Username</label>')
  t.match(res.body, /<input type="text" id="username" name="username"[^>]*autocomplete="username"[^>]*autofocus/)
  t.match(res.body, '<label for="password">Password</label>')
  t.match(res.body, /id="password"[^>]*autocomplete="current-password"/)
  t.match(res.body, '<input type="hidden" name="next" value="/projects/1">')
  t.notMatch(res.body, 'id="sso"', 'no SSO button with AUTH_METHOD=local')
  t.notMatch(res.body, 'role="alert"', 'no message on a plain visit')
})

t.test('the stylesheet is served with a CSS type and cached', async (t) => {
  const gw = await startGateway()
  t.teardown(gw.close)
  const res = await http(`${gw.url}/_authgate/static/authgate.css`)
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/css/)
  t.equal(res.headers['cache-control'], 'public, max-age=3600')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.body, readFileSync(new URL('../../src/pages/assets/authgate.css', import.meta.url), 'utf8'))
})

t.test('the pages\' icon: served without a session, cached; /favicon.ico is the application\'s once signed in', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const gw = await startGateway({}, { upstream: upstream.url })
  t.teardown(gw.close)
  t.equal((await http(`${gw.url}/favicon.ico`)).status, 200, 'no 401 for the browser\'s own request')
  const icon = readFileSync(new URL('../../src/pages/assets/favicon.svg', import.meta.url), 'utf8')
  t.match(icon, /^<svg /)

  const linked = await http(`${gw.url}/_authgate/static/favicon.svg`)
  t.equal(linked.status, 200)
  t.equal(linked.headers['content-type'], 'image/svg+xml')
  t.equal(linked.headers['cache-control'], 'public, max-age=3600')
  t.match(linked.headers['content-security-policy'], /sandbox/, 'an SVG opened on its own runs nothing')
  t.equal(linked.body, icon)

  // Browsers ask for /favicon.ico on their own, as an image: before sign-in that was a 401 on every page.
  const received = upstream.received.length
  for (const accept of ['image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5', '*/*']) {
    const anonymous = await http(`${gw.url}/favicon.ico`, { headers: { accept } })
    t.equal(anonymous.status, 200, `without a session (Accept: ${accept}): the gateway's icon, not 401`)
    t.equal(anonymous.headers['content-type'], 'image/svg+xml')
    t.equal(anonymous.body, icon)
    // The same URL is the application's icon once signed in: revalidated, so that one replaces it.
    t.equal(anonymous.headers['cache-control'], 'no-cache')
    t.match(anonymous.headers.vary, /cookie/i)
  }
  t.equal((await http(`${gw.url}/favicon.ico`, { method: 'POST' })).status, 401, 'only GET and HEAD')
  t.equal(upstream.received.length, received, 'none of it reached the upstream')

  const { cookies } = await loginLocal(gw.url, 'iconfan')
  const signedIn = await http(`${gw.url}/favicon.ico`, { headers: { cookie: cookieHeader(cookies) } })
  t.equal(signedIn.status, 200)
  t.equal(upstream.received.at(-1)?.url, '/favicon.ico', 'with a session: proxied to the application')
  t.not(signedIn.body, icon)
})

t.test('AUTH_METHOD=both shows the SSO button (OIDC_BUTTON_TEXT) and the form; next is carried to SSO', async (t) => {
  const gw = await startGateway({ AUTH_METHOD: 'both', ...OIDC, OIDC_BUTTON_TEXT: 'Sign in with Acme <ID>' })
  t.teardown(gw.close)
  const res = await http(`${gw.url}/login?next=%2Freports%3Fweek%3D2`, { headers: HTML })
  t.equal(res.status, 200)
  assertGatewayPage(t, res, 'login (both)')
  t.match(res.body, '<a class="button secondary" id="sso" href="/login/oidc?next=%2Freports%3Fweek%3D2">Sign in with Acme &lt;ID&gt;</a>')
  t.match(res.body, 'role="separator"')
  t.match(res.body, 'id="username"')
})

t.test('AUTH_METHOD=oidc goes straight to the provider, except to show a notice or an error', async (t) => {
  const gw = await startGateway({ AUTH_METHOD: 'oidc', ...OIDC })
  t.teardown(gw.close)
  const plain = await http(`${gw.url}/login?next=%2Fx`, { headers: HTML })
  t.equal(plain.status, 302)
  t.equal(plain.headers.location, '/login/oidc?next=%2Fx')

  // After signing out, going on to the provider would sign the user straight back in.
  const out = await http(`${gw.url}/login?signed_out=1`, { headers: HTML })
  t.equal(out.status, 200)
  assertGatewayPage(t, out, 'signed out (oidc)')
  t.match(out.body, `<div class="notice" role="status" id="login-notice">${MESSAGES.signedOut}</div>`)
  t.match(out.body, 'id="sso" href="/login/oidc?next=%2F"')
  t.notMatch(out.body, 'id="username"', 'no local form with AUTH_METHOD=oidc')

  // A provider that is down is answered where SSO starts, with the login page saying so and the
  // button to try again: no redirect back to /login, which would go on to /login/oidc again (a loop).
  const down = await http(`${gw.url}/login/oidc?next=%2Fx`, { headers: HTML })
  t.equal(down.status, 503)
  assertGatewayPage(t, down, 'provider unavailable (oidc)')
  t.match(down.body, MESSAGES.providerUnavailable)
  t.match(down.body, 'href="/login/oidc?next=%2Fx"')
})

t.test('the login page shows no text from its query: error keys and injected text show nothing', async (t) => {
  const gw = await startGateway()
  t.teardown(gw.close)
  for (const key of ['sso_unavailable', 'sso_failed', 'toString', '__proto__', 'constructor', '<script>alert(1)</script>', 'Your account is locked, call +1 555']) {
    const res = await http(`${gw.url}/login?error=${encodeURIComponent(key)}`, { headers: HTML })
    t.equal(res.status, 200)
    t.notMatch(res.body, 'role="alert"', `no message for ${JSON.stringify(key)}`)
    t.notMatch(res.body, 'aria-invalid', 'no field points at a message')
    t.notMatch(res.body, key.includes('<') ? '<script' : key, 'nothing reflected')
  }
})

t.test('logout lands on the login page with a "signed out" notice; signed-in users skip it', async (t) => {
  const gw = await startGateway()
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'erin')
  const cookie = Object.entries(cookies).map(([k, v]) => `${k}=${v}`).join('; ')
  const signedIn = await http(`${gw.url}/login?signed_out=1&next=%2Fhome`, { headers: { ...HTML, cookie } })
  t.equal(signedIn.status, 302, 'a signed-in user is not told they signed out')
  t.equal(signedIn.headers.location, '/home')

  const out = await http(`${gw.url}/logout`, { method: 'POST', headers: { ...HTML, cookie, 'sec-fetch-site': 'same-origin' } })
  t.equal(out.status, 303)
  t.equal(out.headers.location, '/login?signed_out=1')
  const page = await http(`${gw.url}/login?signed_out=1`, { headers: HTML })
  t.match(page.body, `role="status" id="login-notice">${MESSAGES.signedOut}<`)
  t.notMatch(page.body, 'aria-invalid', 'a notice is not an error')
})

t.test('APP_NAME is escaped everywhere it appears', async (t) => {
  const gw = await startGateway({ APP_NAME: '<img src=x onerror=alert(1)> & "Co"' })
  t.teardown(gw.close)
  const res = await http(`${gw.url}/login`, { headers: HTML })
  t.notMatch(res.body, '<img src=x')
  t.match(res.body, '<span class="app-name">&lt;img src=x onerror=alert(1)&gt; &amp; &quot;Co&quot;</span>')
  t.match(res.body, '<title>Sign in · &lt;img')
})

t.test('LOGO_FILE is served from /_authgate/static/ and shown; an SVG is sandboxed', async (t) => {
  const gw = await startGateway({ LOGO_FILE })
  t.teardown(gw.close)
  t.equal(gw.config.logo?.src, '/_authgate/static/logo.svg')
  const page = await http(`${gw.url}/login`, { headers: HTML })
  t.match(page.body, '<header class="brand"><img src="/_authgate/static/logo.svg" alt="" height="40"><span class="app-name">authgate</span></header>')
  assertGatewayPage(t, page, 'login with logo')
  const logo = await http(`${gw.url}/_authgate/static/logo.svg`)
  t.equal(logo.status, 200)
  t.equal(logo.headers['content-type'], 'image/svg+xml')
  t.equal(logo.body, readFileSync(LOGO_FILE, 'utf8'))
  t.match(String(logo.headers['content-security-policy']), /sandbox/)
  const other = await http(`${gw.url}/_authgate/static/logo.png`)
  t.equal(other.status, 404, 'only the configured logo is served')
})

t.test('LOGO_URL on another origin is allowed by the CSP; a path is used as is', async (t) => {
  const gw = await startGateway({ LOGO_URL: 'https://cdn.example.com/brand/logo.png' })
  t.teardown(gw.close)
  const res = await http(`${gw.url}/login`, { headers: HTML })
  t.match(res.body, '<img src="https://cdn.example.com/brand/logo.png" alt=""')
  t.match(String(res.headers['content-security-policy']), "img-src 'self' data: https://cdn.example.com;")

  const local = await startGateway({ LOGO_URL: '/static/logo.png' })
  t.teardown(local.close)
  const res2 = await http(`${local.url}/login`, { headers: HTML })
  t.match(res2.body, '<img src="/static/logo.png" alt=""')
  t.match(String(res2.headers['content-security-policy']), "img-src 'self' data:;")
})

t.test('logo settings are validated with clear messages', async (t) => {
  const problems = (env: Record<string, string>): string[] =>
    configRefusal({ SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32), ...env }, new URL('../fixtures/', import.meta.url).pathname)
  t.same(problems({ LOGO_FILE: 'logo.svg' }), [], 'relative to the working directory')
  t.match(problems({ LOGO_FILE: 'logo.svg', LOGO_URL: '/x.png' }), [/^LOGO_URL: set together with LOGO_FILE/])
  t.match(problems({ LOGO_FILE: 'missing.png' }), [/^LOGO_FILE: cannot read missing.png \(ENOENT\)/])
  t.match(problems({ LOGO_FILE: 'logo.exe' }), [/^LOGO_FILE: must be an image file ending in .png, .svg/])
  t.match(problems({ LOGO_FILE: '.' + '/' }), [/^LOGO_FILE: must be an image file/])
  t.match(problems({ LOGO_URL: 'http://cdn.example.com/logo.png' }), [/^LOGO_URL: must be a path such as \/static\/logo.png or an https:\/\/ URL/])
  t.match(problems({ LOGO_URL: 'javascript:alert(1)' }), [/^LOGO_URL: must start with https:\/\/ or http:\/\//])
  t.match(problems({ LOGO_URL: '//evil.example/logo.png' }), [/^LOGO_URL: is not a valid URL/])
  t.match(problems({ LOGO_URL: 'https://user:pw@cdn.example.com/l.png' }), [/^LOGO_URL: must not contain credentials/])
  t.same(problems({ LOGO_URL: 'http://127.0.0.1:3000/logo.png' }), [], 'http on loopback is fine')
})

t.test('the 502 page is a gateway page: same look, same headers', async (t) => {
  const upstream = await startUpstream()
  const port = upstream.port
  await upstream.close() // nothing listens there now
  const gw = await startGateway({ APP_NAME: 'TimeTracker' }, { upstream: `http://127.0.0.1:${port}` })
  t.teardown(gw.close)
  const { cookies } = await loginLocal(gw.url, 'erin')
  const cookie = Object.entries(cookies).map(([k, v]) => `${k}=${v}`).join('; ')
  const res = await http(`${gw.url}/dashboard`, { headers: { ...HTML, cookie } })
  t.equal(res.status, 502)
  assertGatewayPage(t, res, '502')
  t.match(res.body, '<h1>The application is not reachable</h1>')
  t.match(res.body, '<a class="button" href="/dashboard">Try again</a>')
  t.match(res.body, '<span class="app-name">TimeTracker</span>')
})

t.test('gateway error pages (4xx) share the look and the headers', async (t) => {
  const gw = await startGateway()
  t.teardown(gw.close)
  const res = await http(`${gw.url}/login`, { method: 'GET', headers: { ...HTML, 'content-type': 'application/json' } })
  t.equal(res.status, 200, 'a GET ignores a body type')
  const bad = await http(`${gw.url}/login`, { method: 'POST', headers: { ...HTML, 'content-type': 'application/x-www-form-urlencoded' }, body: 'x'.repeat(20 * 1024) })
  t.equal(bad.status, 413)
  assertGatewayPage(t, bad, '413')
  t.match(bad.body, '<div class="alert" role="alert">')
})
