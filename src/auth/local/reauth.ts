// Asking again for the password before a change that outlives the session: adding a passkey (either
// kind) and enrolling an authenticator app. Without it, whoever holds a signed-in session for a while
// (a stolen cookie, a browser left open) could turn it into lasting access to the account (a passkey
// that signs in without the password) or lock its owner out (an authenticator app they do not have).
// The check is the sign-in's: the same scrypt verification, counted by the same throttle, so a
// stolen session is not a way to guess the password either.
import type { FastifyRequest } from 'fastify'
import { auditRequest } from '../../ops/audit.js'
import { verifyPassword } from './password.js'
import type { Attempt, LoginThrottle } from './throttle.js'

/** What is being added, for the audit line. */
export type ReauthPurpose = 'totp' | 'passkey'

export const REAUTH_MESSAGES = {
  missing: 'Type your current password to continue.',
  wrong: 'That password is not right. Type the password you sign in with.',
  throttled: (seconds: number) => `Too many wrong passwords. Try again in ${Math.ceil(seconds / 60)} minute${seconds > 60 ? 's' : ''}.`
}

export type PasswordCheck =
  | { ok: true }
  | { ok: false, status: 400, reason: 'missing-password', message: string }
  | { ok: false, status: 401, reason: 'wrong-password', message: string }
  | { ok: false, status: 429, reason: 'throttled', message: string, retryAfter: number }

/**
 * The password typed, or undefined when there is none to check (absent, not a string, or empty):
 * a form sent without it is a mistake, not a guess, and is not counted.
 */
export function typedPassword (value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined
}

export interface ReauthDeps {
  throttle: LoginThrottle
  /** The throttle's view of an attempt at this username from this request (src/auth/local/routes.ts's throttleAttempts). */
  attemptFor: (request: FastifyRequest, username: string) => Attempt
}

/**
 * Checks `password` against the signed-in user's: counted before the (slow) check like a sign-in,
 * released when right; a wrong one or a throttled one is audited (`reauth-failed`, never with what
 * was typed).
 */
export async function confirmPassword (deps: ReauthDeps, request: FastifyRequest, user: { username: string, passwordHash: string | null }, password: unknown, purpose: ReauthPurpose): Promise<PasswordCheck> {
  const typed = typedPassword(password)
  if (typed === undefined) return { ok: false, status: 400, reason: 'missing-password', message: REAUTH_MESSAGES.missing }
  const attempt = deps.attemptFor(request, user.username)
  const wait = await deps.throttle.begin(attempt)
  if (wait > 0) {
    auditRequest(request, { audit: 'reauth-failed', user: user.username, by: 'user', factor: purpose, reason: 'throttled' })
    return { ok: false, status: 429, reason: 'throttled', message: REAUTH_MESSAGES.throttled(wait), retryAfter: wait }
  }
  // verifyPassword spends the same work when the account has no password (always a failure).
  if (!(await verifyPassword(typed, user.passwordHash))) {
    auditRequest(request, { audit: 'reauth-failed', user: user.username, by: 'user', factor: purpose, reason: 'wrong-password' })
    return { ok: false, status: 401, reason: 'wrong-password', message: REAUTH_MESSAGES.wrong }
  }
  await deps.throttle.succeeded(attempt)
  return { ok: true }
}
