// What an OIDC sign-in failure looks like to the user (a page) and to the operator (a log line).
// Pages carry a short code that docs/OIDC_SETUP.md explains; logs carry the reason. Neither ever
// carries a token, a code, a stack trace or a claim value.
import { AuthorizationResponseError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client'

export type OidcFailureCode =
  | 'sso-disabled'
  | 'unknown-provider'
  | 'provider-unavailable'
  | 'database-unavailable'
  | 'transaction-missing'
  | 'provider-error'
  | 'access-denied'
  | 'verification-failed'
  | 'missing-username'
  | 'invalid-username'
  | 'lookalike-username'
  | 'groups-too-large'
  | 'invalid-groups'
  | 'not-registered'
  | 'linked-elsewhere'
  | 'unverified-email'
  | 'disabled'
  | 'not-allowed'

interface FailurePage { status: number, title: string, message: string }

const TRY_AGAIN = 'Please try again. If this keeps happening, contact your administrator.'

export const FAILURES: Record<OidcFailureCode, FailurePage> = {
  'sso-disabled': { status: 404, title: 'Single sign-on is not enabled', message: 'Single sign-on is not enabled on this gateway.' },
  'unknown-provider': { status: 400, title: 'Unknown sign-in provider', message: 'This sign-in link names a sign-in provider that is not configured here.' },
  'provider-unavailable': { status: 503, title: 'Sign-in provider unavailable', message: 'The single sign-on provider cannot be reached right now. Try again in a moment.' },
  'database-unavailable': { status: 503, title: 'Sign-in unavailable', message: 'Signing in is not possible right now: the sign-in gateway cannot reach its database. Try again in a moment.' },
  'transaction-missing': { status: 400, title: 'Sign-in expired', message: 'This sign-in was not started in this browser, took more than 10 minutes, or was already completed. ' + TRY_AGAIN },
  'provider-error': { status: 400, title: 'Sign-in failed', message: 'The sign-in provider reported an error and did not sign you in. ' + TRY_AGAIN },
  'access-denied': { status: 403, title: 'Sign-in cancelled', message: 'The sign-in was cancelled or refused at the sign-in provider.' },
  'verification-failed': { status: 400, title: 'Sign-in failed', message: 'The answer from the sign-in provider could not be verified, so you were not signed in. ' + TRY_AGAIN },
  'missing-username': { status: 400, title: 'Sign-in failed', message: 'The sign-in provider did not send a username.' },
  'invalid-username': { status: 400, title: 'Sign-in failed', message: 'The username sent by the sign-in provider is not usable here.' },
  'lookalike-username': { status: 400, title: 'Username not usable here', message: 'The username sent by the sign-in provider cannot be used here, so you were not signed in.' },
  'groups-too-large': { status: 400, title: 'Too many groups', message: 'The sign-in provider sent more groups than this gateway can carry for one session. Leaving some out could give access that one of them denies, so you were not signed in.' },
  'invalid-groups': { status: 400, title: 'Sign-in failed', message: 'The groups sent by the sign-in provider are in a form this gateway cannot read, so you were not signed in.' },
  'not-registered': { status: 403, title: 'Not registered', message: 'You signed in at the provider, but you have no account here, and new accounts are not created automatically. Ask your administrator to add you.' },
  'linked-elsewhere': { status: 409, title: 'Account already linked', message: 'An account with your username exists here but belongs to another sign-in identity, so you were not signed in to it. Contact your administrator.' },
  'unverified-email': { status: 403, title: 'Email address not verified', message: 'Your sign-in provider has not verified your email address, which is your username here. Verify it at the provider, then try again.' },
  disabled: { status: 403, title: 'Account disabled', message: 'This account is disabled. Contact your administrator.' },
  'not-allowed': { status: 403, title: 'Not allowed here', message: 'You are signed in at the sign-in provider with an account that may not use this application. To use another account, sign out at the provider, then sign in again. If you need access with this account, ask your administrator.' }
}

export class OidcFailure extends Error {
  /** `username`: who tried, once the IdP's answer said (for the audit log). */
  constructor (readonly code: OidcFailureCode, readonly reason: string, readonly detail?: string, readonly username?: string) {
    super(reason)
    this.name = 'OidcFailure'
  }
}

const truncate = (s: string, max = 300): string => s.length > max ? s.slice(0, max) + '…' : s

/**
 * An ID token signed with a symmetric (HMAC) algorithm: verifying it would need the client secret as
 * the key, so anyone who knows the secret could forge identities. Refused, with the algorithm named
 * so the operator knows which setting to change at the IdP (LemonLDAP::NG defaults to HS512).
 */
export class SymmetricIdTokenError extends Error {
  constructor (readonly alg: string, options?: ErrorOptions) {
    super(`ID token signed with ${alg}; this gateway accepts only asymmetric algorithms (RS256, ES256, …): set the client's ID token algorithm to RS256 at the IdP`, options)
    this.name = 'SymmetricIdTokenError'
  }
}

/**
 * The IdP refused the client's credentials (token endpoint) or the access token (userinfo) with an
 * HTTP error and a WWW-Authenticate challenge (RFC 6749 §5.2, RFC 6750 §3.1): the provider's error,
 * not a failed check. The message names the endpoint, the status, the challenge and the body's
 * `error` / `error_description`: never a header or body in full, which could carry a token.
 */
export class IdpRefusalError extends Error {
  constructor (endpoint: string, status: number, challenge: string, body: { error?: string, error_description?: string }, options?: ErrorOptions) {
    const said = body.error === undefined ? '' : `; body: ${body.error}${body.error_description !== undefined ? ` (${body.error_description})` : ''}`
    super(truncate(`${endpoint} answered HTTP ${status}, WWW-Authenticate: ${challenge}${said}`), options)
    this.name = 'IdpRefusalError'
  }
}

/** Parsed challenges: the scheme and the error parameters only (a token68 or another parameter could be secret). */
export function describeChallenges (challenges: ReadonlyArray<{ scheme: string, parameters: { error?: string, error_description?: string } }>): string {
  return challenges.map((c) => [c.scheme,
    ...(['error', 'error_description'] as const).filter((name) => c.parameters[name] !== undefined).map((name) => `${name}=${c.parameters[name] ?? ''}`)
  ].join(' ')).join('; ')
}

/** A challenge openid-client could not parse (LemonLDAP::NG's userinfo sends one without a scheme): its error parameters. */
export function describeRawChallenge (header: string): string {
  const param = (name: string): string | undefined => new RegExp(`(?:^|[\\s,])${name}\\s*=\\s*(?:"([^"]*)"|([^,]*))`, 'i').exec(header)?.slice(1).find((v) => v !== undefined)?.trim()
  const params = ['error', 'error_description'].flatMap((name) => { const v = param(name); return v === undefined ? [] : [`${name}=${v}`] })
  return params.length > 0 ? `(unparsable) ${params.join(' ')}` : '(unparsable)'
}

/** One line about an error from openid-client (or fetch): messages and codes, never payloads. */
export function describeError (err: unknown): string {
  if (err instanceof ResponseBodyError) {
    return truncate(`${err.error}${err.error_description !== undefined ? ': ' + err.error_description : ''} (HTTP ${err.status})`)
  }
  if (err instanceof SymmetricIdTokenError || err instanceof IdpRefusalError) return err.message
  if (err instanceof WWWAuthenticateChallengeError) return truncate(`HTTP ${err.status}, WWW-Authenticate: ${describeChallenges(err.cause)}`)
  if (err instanceof AuthorizationResponseError) {
    return truncate(`${err.error}${err.error_description !== undefined ? ': ' + err.error_description : ''}`)
  }
  if (!(err instanceof Error)) return truncate(String(err))
  let text = err.message
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') text += ` [${code}]`
  const cause = err.cause
  if (cause instanceof Response) text += `: HTTP ${cause.status}`
  else if (cause instanceof Error) {
    text += `: ${cause.message}`
    const causeCode = (cause as { code?: unknown }).code
    if (typeof causeCode === 'string') text += ` [${causeCode}]`
    // fetch failures nest the socket error one level further down
    if (cause.cause instanceof Error) text += `: ${cause.cause.message}`
  }
  return truncate(text)
}
