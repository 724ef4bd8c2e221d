// Single sign-on through an OpenID Connect provider (AUTH_METHOD=oidc or both).
import { isLoopbackHost } from './net.js'
import type { Reader } from './environment.js'
import { oneOf, optionalUrl, parseIntIn } from './parse.js'

export interface OidcConfig {
  issuer: URL
  clientId: string
  clientSecret: string
  /** How the gateway authenticates at the token endpoint (OIDC_CLIENT_AUTH_METHOD). */
  clientAuthMethod: 'client_secret_post' | 'client_secret_basic'
  redirectUri: URL
  scopes: string
  usernameClaim: string
  fullNameClaim: string
  emailClaim: string
  groupsClaim: string
  adminGroup: string | undefined
  adminEmails: string[]
  postLogoutRedirectUri: URL | undefined
  buttonText: string
  /**
   * Seconds between re-validations of an SSO session with the IdP (its refresh token, see
   * src/auth/oidc/revalidation.ts); 0: never re-validated, the sign-in's identity holds until expiry.
   */
  refreshInterval: number
}

/** Longest OIDC_REFRESH_INTERVAL: a day (SESSION_MAX_AGE is usually no longer). */
export const MAX_REFRESH_INTERVAL = 86400

export function parseOidc (r: Reader): OidcConfig | undefined {
  const { get, getList, fail } = r
  const required = ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URI']
  let missing = false
  for (const name of required) {
    if (get(name) === undefined) { fail(name, 'is required when AUTH_METHOD is oidc or both'); missing = true }
  }
  const issuer = optionalUrl('OIDC_ISSUER', get('OIDC_ISSUER'), ['http:', 'https:'], fail)
  if (issuer !== undefined && issuer.protocol === 'http:' && !isLoopbackHost(issuer.hostname)) {
    fail('OIDC_ISSUER', 'must use https:// (http:// is accepted only for localhost, 127.0.0.0/8 and ::1)')
  }
  const redirectUri = optionalUrl('OIDC_REDIRECT_URI', get('OIDC_REDIRECT_URI'), ['http:', 'https:'], fail)
  if (redirectUri !== undefined && redirectUri.pathname !== '/auth/oidc/callback') {
    fail('OIDC_REDIRECT_URI', 'must end in /auth/oidc/callback, e.g. https://tt.example.com/auth/oidc/callback')
  }
  const postLogoutRedirectUri = optionalUrl('OIDC_POST_LOGOUT_REDIRECT_URI', get('OIDC_POST_LOGOUT_REDIRECT_URI'), ['http:', 'https:'], fail)
  const scopes = getList('OIDC_SCOPES', ['openid', 'profile', 'email'], /\s+/).join(' ')
  if (!scopes.split(' ').includes('openid')) fail('OIDC_SCOPES', 'must include openid (space-separated, e.g. openid profile email)')
  const clientAuthMethod = oneOf('OIDC_CLIENT_AUTH_METHOD', get('OIDC_CLIENT_AUTH_METHOD') ?? 'client_secret_post', ['client_secret_post', 'client_secret_basic'] as const, fail)
  const refreshInterval = parseIntIn(get('OIDC_REFRESH_INTERVAL') ?? '300', 0, MAX_REFRESH_INTERVAL) ??
    fail('OIDC_REFRESH_INTERVAL', `must be a whole number of seconds from 0 (off) to ${MAX_REFRESH_INTERVAL}, e.g. 300`)
  if (missing || refreshInterval === undefined || issuer === undefined || redirectUri === undefined || clientAuthMethod === undefined) return undefined
  return {
    issuer,
    clientId: get('OIDC_CLIENT_ID')!,
    clientSecret: get('OIDC_CLIENT_SECRET')!,
    clientAuthMethod,
    redirectUri,
    scopes,
    usernameClaim: get('OIDC_USERNAME_CLAIM') ?? 'preferred_username',
    fullNameClaim: get('OIDC_FULL_NAME_CLAIM') ?? 'name',
    emailClaim: get('OIDC_EMAIL_CLAIM') ?? 'email',
    groupsClaim: get('OIDC_GROUPS_CLAIM') ?? 'groups',
    adminGroup: get('OIDC_ADMIN_GROUP'),
    adminEmails: getList('OIDC_ADMIN_EMAILS').map((e) => e.toLowerCase()),
    postLogoutRedirectUri,
    buttonText: get('OIDC_BUTTON_TEXT') ?? 'Sign in with SSO',
    refreshInterval
  }
}
