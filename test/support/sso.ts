// Driving the gateway's SSO like a browser: /login/oidc → IdP → /auth/oidc/callback, with one
// cookie jar for the IdP and the gateway (both on 127.0.0.1, as a browser would keep them).
import type { Env } from '../../src/config/index.js'
import { CookieJar, fetchWithJar, signInThroughProvider, type Credentials } from './browserless.js'
import { startGateway, type StartOptions, type TestGateway } from './gateway.js'
import type { TestUpstream } from './upstream.js'

/**
 * The redirect URI registered at the IdP. The gateway listens on an ephemeral port that is not
 * known when the IdP starts, so the tests deliver the IdP's redirect to the gateway themselves
 * (deliverToGateway), as a reverse proxy in front of it would; the token request still carries
 * exactly this registered URI.
 */
export const REDIRECT_URI = 'http://localhost:8080/auth/oidc/callback'
export const POST_LOGOUT_URI = 'http://localhost:8080/login'
export const CLIENT_ID = 'authgate'
export const CLIENT_SECRET = 'authgate-test-secret'

export function oidcEnv (issuer: string, env: Env = {}): Env {
  return {
    AUTH_METHOD: 'oidc',
    OIDC_ISSUER: issuer,
    OIDC_CLIENT_ID: CLIENT_ID,
    OIDC_CLIENT_SECRET: CLIENT_SECRET,
    OIDC_REDIRECT_URI: REDIRECT_URI,
    OIDC_SCOPES: 'openid profile email groups',
    ...env
  }
}

export async function startSsoGateway (issuer: string, env: Env = {}, upstream?: string, options: StartOptions = {}): Promise<TestGateway> {
  const gateway = await startGateway(oidcEnv(issuer, env), { ...options, ...(upstream !== undefined ? { upstream } : {}) })
  // Discovery runs in the background; wait for it so tests start from a ready gateway.
  for (let i = 0; i < 100; i++) {
    const ready = await fetch(`${gateway.url}/_authgate/readyz`).then(async (r) => await r.json() as { checks: Record<string, string> })
    if (ready.checks['oidc'] === 'ok') return gateway
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('OIDC discovery did not complete')
}

/** The IdP's redirect to REDIRECT_URI, re-aimed at the gateway's real address. */
export function deliverToGateway (gateway: TestGateway, idpRedirect: string): string {
  const target = new URL(idpRedirect)
  return gateway.url + target.pathname + target.search
}

/** GET /login/oidc: the gateway's answer (body read) and, for a redirect, the IdP authorization URL. */
export async function startSso (gateway: TestGateway, jar: CookieJar, next?: string): Promise<{ response: Response, body: string, authorizeUrl: string | undefined }> {
  const response = await fetchWithJar(jar, `${gateway.url}/login/oidc${next !== undefined ? '?next=' + encodeURIComponent(next) : ''}`)
  const location = response.headers.get('location') ?? undefined
  const body = await response.text()
  return { response, body, authorizeUrl: response.status === 302 ? location : undefined }
}

/** A whole sign-in at the real provider; returns the gateway's answer to the callback. */
export async function ssoLogin (gateway: TestGateway, jar: CookieJar, credentials: Credentials, next?: string): Promise<Response> {
  const { authorizeUrl, response } = await startSso(gateway, jar, next)
  if (authorizeUrl === undefined) throw new Error(`/login/oidc answered ${response.status}`)
  const back = await signInThroughProvider(authorizeUrl, jar, credentials)
  return await fetchWithJar(jar, deliverToGateway(gateway, back))
}

/** Against the hostile IdP: /authorize redirects straight back, no login page. */
export async function hostileLogin (gateway: TestGateway, jar: CookieJar, next?: string): Promise<{ callback: string, response: Response }> {
  const { authorizeUrl, response } = await startSso(gateway, jar, next)
  if (authorizeUrl === undefined) throw new Error(`/login/oidc answered ${response.status}`)
  const authorize = await fetchWithJar(jar, authorizeUrl)
  const location = authorize.headers.get('location')
  if (authorize.status !== 302 || location === null) throw new Error(`authorize answered ${authorize.status}: ${await authorize.text()}`)
  const callback = deliverToGateway(gateway, location)
  return { callback, response: await fetchWithJar(jar, callback) }
}

/**
 * Who the gateway says the jar's session is, as the upstream sees it (X-User, X-Admin, X-Groups of
 * a proxied request), or undefined when the request is refused (no valid session).
 */
export async function identityAtUpstream (gateway: TestGateway, jar: CookieJar, upstream: TestUpstream): Promise<{ user: string, admin: string, groups: string, email: string, fullName: string } | undefined> {
  const response = await fetchWithJar(jar, `${gateway.url}/whoami`, { headers: { accept: 'application/json' } })
  await response.text()
  if (response.status !== 200) return undefined
  const headers = upstream.received.at(-1)!.headers
  const one = (name: string): string => decodeURIComponent(String(headers[name] ?? ''))
  return { user: one('x-user'), admin: one('x-admin'), groups: String(headers['x-groups'] ?? ''), email: one('x-email'), fullName: one('x-full-name') }
}
