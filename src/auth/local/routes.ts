// GET/POST /login: the login page (for every AUTH_METHOD) and the local sign-in form.
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify'
import type { Config } from '../../config/index.js'
import type { UserRepository } from '../../db/users.js'
import { checkUsername, usernameProblemMessage } from '../../db/username.js'
import type { Sessions } from '../../session/index.js'
import { MESSAGES } from '../../pages/login.js'
import { loginRenderer } from '../../pages/login-renderer.js'
import { safeNextPath } from '../next-url.js'
import { verifyPassword } from './password.js'
import type { LoginThrottle, Attempt } from './throttle.js'
import { clientAddressKey } from '../../net/client-address.js'
import { deviceIdFor, newDeviceCookie, DEVICE_COOKIE_MAX_AGE } from './device-cookie.js'
import { deriveKeys } from '../../session/keys.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import type { Clock } from '../../clock.js'
import type { OidcProviders } from '../oidc/providers.js'
import { isDatabaseUnavailable } from '../../db/unavailable.js'
import { RETRY_AFTER_SECONDS } from '../../pages/unavailable.js'
import type { User } from '../../db/users.js'
import type { SecondFactorKind } from '../../session/session.js'
import type { SecondFactors } from '../mfa/service.js'
import type { PasskeyRepository } from '../../db/passkeys.js'
import { ACCOUNT_PATH } from '../mfa/gate.js'
import { secondStepRoutes } from '../mfa/second-step.js'

export interface LocalLoginDeps {
  config: Config
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
  /** Binds device cookies to this deployment, like the session cookie (session/keys.ts). */
  deploymentId: string
  /** The throttle's windows and the device cookies' age are read from it. */
  clock: Clock
  /** The SSO providers, for the login page's buttons; undefined when AUTH_METHOD=local. */
  providers: OidcProviders | undefined
  /** LOCAL_MFA's second factors (TOTP, recovery codes, the second step's tokens). */
  secondFactors: SecondFactors
  /** The failed sign-in counters, shared with the second step and the account page's code checks. */
  throttle: LoginThrottle
  /** Passkeys: a user who has one may use it at the second step. */
  passkeys: PasskeyRepository
}

/** How a local sign-in ends: the session, and where it goes. */
export interface SignInOutcome {
  secondFactor?: SecondFactorKind
  enrolmentPending?: boolean
  /** The attempts this sign-in was counted as (2: the password step and the code): none counts as a failure now. */
  attempts?: number
  /** Answered for a script (the second step's passkey button): `{ location }` instead of a redirect. */
  json?: boolean
}

interface LoginForm { username?: unknown, password?: unknown, csrf_token?: unknown, next?: unknown }

/** `signed_out`: set by /logout (auth/logout.ts); the page then says so, a fixed text. */
interface LoginQuery { next?: string, signed_out?: string }

/**
 * The throttle's view of an attempt at a username from a request: its client address and, when it
 * brought a valid device cookie for that username, the cookie's id (throttle.ts). Shared by the
 * password step, the second step and the account page's code checks.
 */
export function throttleAttempts (config: Config, sessions: Pick<Sessions, 'names'>, deploymentId: string, clock: Clock): (request: FastifyRequest, username: string) => Attempt {
  // Device cookies matter where there are passwords to guess; the first key signs, all of them verify.
  const deviceKeys = config.localAuth === 'password' ? deriveKeys(config.secretKeys, deploymentId, 'device-cookie-v1') : []
  return (request, username) => ({
    address: clientAddressKey(request.ip),
    username,
    deviceId: deviceIdFor(deviceKeys, request.cookies[sessions.names.device], username, clock.now() / 1000)
  })
}

export const localLoginRoutes: FastifyPluginAsync<LocalLoginDeps> = async (app, deps) => {
  const { config, users, sessions, metrics, clock } = deps
  const { throttle, secondFactors } = deps
  // Device cookies matter where there are passwords to guess; the first key signs, all of them verify.
  const deviceKeys = config.localAuth === 'password' ? deriveKeys(config.secretKeys, deps.deploymentId, 'device-cookie-v1') : []
  const attemptFor = throttleAttempts(config, sessions, deps.deploymentId, clock)

  /**
   * Every credential asked for was right: the attempt stops counting, the device cookie is renewed,
   * and the session starts (a full one, or with LOCAL_MFA=required and no factor yet, one that only
   * reaches the account page).
   */
  const completeSignIn = async (request: FastifyRequest, reply: FastifyReply, signedIn: User, attempt: Attempt, next: string, outcome: SignInOutcome): Promise<FastifyReply> => {
    // ADMIN_USERNAMES promotes at sign-in (as TimeTracker); removing a name does not demote, the CLI does.
    const promote = config.adminUsernames.includes(signedIn.username) && !signedIn.isAdmin
    const user = await users.recordLogin(signedIn.id, promote ? { isAdmin: true } : {})
    if (promote) auditRequest(request, { audit: 'admin-granted', user: user.username, by: 'admin-usernames' })
    for (let i = 0; i < (outcome.attempts ?? 1); i++) await throttle.succeeded(attempt)
    if (deviceKeys.length > 0) reply.setCookie(sessions.names.device, newDeviceCookie(deviceKeys[0]!, user.username, clock.now() / 1000), sessions.cookieOptions(DEVICE_COOKIE_MAX_AGE))
    await sessions.start(request, user, 'local', { secondFactor: outcome.secondFactor, enrolmentPending: outcome.enrolmentPending })
    metrics.login('local')
    if (config.localAuth === 'password') metrics.signInsByFactor.inc(outcome.enrolmentPending === true ? 'enrolment-pending' : outcome.secondFactor ?? 'none')
    auditRequest(request, { audit: 'sign-in', user: user.username, by: 'user', method: 'local', admin: user.isAdmin, ...(outcome.secondFactor !== undefined ? { factor: outcome.secondFactor } : {}) })
    const location = outcome.enrolmentPending === true ? ACCOUNT_PATH : next
    if (outcome.json === true) return await reply.header('cache-control', 'no-store').send({ location })
    return await reply.redirect(location, 303)
  }
  const localEnabled = config.authMethod !== 'oidc'
  const render = loginRenderer(config, sessions, deps.providers)

  const { renderSecondStep } = await secondStepRoutes(app, { config, users, sessions, metrics, secondFactors, throttle, attemptFor, completeSignIn, renderLogin: render, passkeys: deps.passkeys, clock })

  app.get<{ Querystring: LoginQuery }>('/login', async (request, reply) => {
    const next = safeNextPath(request.query.next)
    const checked = sessions.check(request)
    if (checked.ok) return await reply.redirect(next, 302)
    // Debug only: the request that was refused before coming here has logged why already.
    if (checked.reason !== 'absent') request.log.debug({ reason: checked.reason }, 'session cookie refused')
    const notice = request.query.signed_out !== undefined ? MESSAGES.signedOut : undefined
    // With SSO only there is nothing to fill in: go straight to the provider, unless the user has just
    // signed out: going on automatically would sign them straight back in (a live provider session),
    // so the page shows the notice and the button instead. (A provider that is down is answered at
    // /login/oidc with this page and its message: no redirect back here, so no loop.)
    // With several providers the user chooses: the page with one button each.
    if (!localEnabled && notice === undefined && config.oidcProviders.length <= 1) return await reply.redirect('/login/oidc?next=' + encodeURIComponent(next), 302)
    return render(request, reply, 200, next, { notice })
  })

  app.post<{ Body: LoginForm }>('/login', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const form: LoginForm = typeof request.body === 'object' && request.body !== null ? request.body : {}
    const next = safeNextPath(form.next)
    /** Counted, audited, and the login page again with what went wrong. */
    const refuse = (status: number, reason: string, error: string, username?: string): FastifyReply => {
      metrics.loginFailure('local', reason)
      auditRequest(request, { audit: 'sign-in-failed', user: username, by: 'user', method: 'local', reason })
      return render(request, reply, status, next, { error, ...(username !== undefined ? { username } : {}) })
    }
    if (!localEnabled) return refuse(403, 'local-disabled', MESSAGES.localDisabled)
    if (!sessions.isCsrfValid(request, form.csrf_token)) return refuse(403, 'csrf', MESSAGES.csrf)
    const rawUsername = typeof form.username === 'string' ? form.username : ''
    // Spaces typed around the name are trimmed (no stored name has any); nothing else is folded.
    const checked = checkUsername(rawUsername.trim())
    if (!checked.ok) {
      // What was typed is not logged: it may be anything, a password typed in the wrong field included.
      metrics.loginFailure('local', 'invalid-username')
      auditRequest(request, { audit: 'sign-in-failed', user: undefined, by: 'user', method: 'local', reason: 'invalid-username' })
      return render(request, reply, 400, next, { error: usernameProblemMessage(checked.problem), username: rawUsername.slice(0, 64) })
    }
    const username = checked.username

    /** The sign-in proper: every step that reads or writes the database. */
    const signIn = async (): Promise<FastifyReply> => {
      const attempt = attemptFor(request, username)
      // Counted now, before the password check, so concurrent guesses cannot all slip under the limit.
      const wait = await throttle.begin(attempt)
      if (wait > 0) {
        reply.header('retry-after', String(wait))
        return refuse(429, 'throttled', MESSAGES.throttled(wait), username)
      }

      let user = await users.findByUsername(username)
      if (config.localAuth === 'password') {
        const password = typeof form.password === 'string' ? form.password : ''
        // verifyPassword spends the same work for unknown users, so timing does not reveal who exists.
        if (!(await verifyPassword(password, user?.passwordHash)) || user === undefined) return refuse(401, 'invalid-credentials', MESSAGES.invalidCredentials, username)
      } else if (user === undefined) {
        if (!config.allowSelfRegister) return refuse(403, 'not-registered', MESSAGES.registrationClosed, username)
        const created = await users.create({ username, isAdmin: config.adminUsernames.includes(username) })
        user = created.user
        if (created.created) {
          auditRequest(request, { audit: 'user-created', user: username, by: 'user', method: 'local', admin: user.isAdmin })
          if (user.isAdmin) auditRequest(request, { audit: 'admin-granted', user: username, by: 'admin-usernames' })
        }
      }
      if (!user.isActive) return refuse(403, 'disabled', MESSAGES.disabled, username)

      if (config.localMfa !== 'off' && config.localAuth === 'password') {
        // A confirmed second factor: the password alone starts nothing. The attempt keeps counting
        // as a failure until the second step succeeds, and the step is bound to this one by a token.
        if (await secondFactors.hasConfirmedFactor(user.id)) {
          const mfaToken = await secondFactors.newStepToken(user.id, next)
          return await renderSecondStep(request, reply, 200, { mfaToken, next, userId: user.id })
        }
        if (config.localMfa === 'required') return await completeSignIn(request, reply, user, attempt, next, { enrolmentPending: true })
      }
      return await completeSignIn(request, reply, user, attempt, next, {})
    }
    try {
      return await signIn()
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err
      // The database failing is a moment, not the user's mistake: the login page, saying so (503).
      // Nothing was granted: the session cookie is set only once its record is written.
      metrics.loginFailure('local', 'database-unavailable')
      auditRequest(request, { audit: 'sign-in-failed', user: username, by: 'user', method: 'local', reason: 'database-unavailable' })
      request.log.warn({ err: (err as Error).message }, 'sign-in failed: the database is unavailable')
      reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      return render(request, reply, 503, next, { error: MESSAGES.databaseUnavailable, username })
    }
  })
}
