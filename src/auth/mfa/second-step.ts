// POST /login/mfa: the second sign-in step (LOCAL_MFA). The password step answered a page whose form
// carries a token binding it to that step (step-token.ts: 5 minutes, once); here the code typed (a
// TOTP code or a recovery code) is checked, counted by the same throttle as passwords, and a right
// one starts the session, marked with the factor passed, and goes on to the `next` of the first step.
// A user with passkeys may answer with one instead (POST /login/mfa/passkey, for passkeys.js): the
// same token, throttle and session.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../../config/index.js'
import type { User, UserRepository } from '../../db/users.js'
import type { Sessions } from '../../session/index.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import { brandOf, logoImgSources, messagePage } from '../../pages/layout.js'
import { MESSAGES } from '../../pages/login.js'
import type { LoginRenderer } from '../../pages/login-renderer.js'
import { MFA_MESSAGES, SECOND_STEP_PASSKEY_PATH, secondStepPage } from '../../pages/second-factor.js'
import { safeNextPath } from '../next-url.js'
import type { Attempt, LoginThrottle } from '../local/throttle.js'
import type { SecondFactors } from './service.js'
import type { SecondFactorKind } from '../../session/session.js'
import type { PasskeyRepository } from '../../db/passkeys.js'
import { passkeySecondFactor } from '../passkeys/second-factor.js'
import { passkeyRelyingParty } from '../passkeys/availability.js'
import { CSRF_HEADER, PASSKEY_OPTIONS_PER_MINUTE } from '../passkeys/routes.js'
import { allowOwnScripts } from '../../pages/security-headers.js'
import { RateLimiter } from '../../net/rate-limit.js'
import { clientAddressKey } from '../../net/client-address.js'
import type { Clock } from '../../clock.js'

export interface SecondStepDeps {
  config: Config
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
  secondFactors: SecondFactors
  throttle: LoginThrottle
  attemptFor: (request: FastifyRequest, username: string) => Attempt
  completeSignIn: (request: FastifyRequest, reply: FastifyReply, user: User, attempt: Attempt, next: string, outcome: { secondFactor?: SecondFactorKind, attempts?: number, json?: boolean }) => Promise<FastifyReply>
  renderLogin: LoginRenderer
  passkeys: PasskeyRepository
  clock: Clock
}

interface SecondStepForm { code?: unknown, csrf_token?: unknown, mfa_token?: unknown, next?: unknown }

/** `userId`: the step's user, when known: their passkeys (if any) get a button. */
export type SecondStepRenderer = (request: FastifyRequest, reply: FastifyReply, status: number, o: { mfaToken: string, next: string, error?: string, userId?: number }) => Promise<FastifyReply>

interface PasskeyStepBody { mfa_token?: unknown, response?: unknown }
/** A WebAuthn answer is a few kilobytes. */
const PASSKEY_BODY_LIMIT = 32 * 1024

export async function secondStepRoutes (app: FastifyInstance, deps: SecondStepDeps): Promise<{ renderSecondStep: SecondStepRenderer }> {
  const { config, users, sessions, metrics, secondFactors, throttle } = deps
  const brand = brandOf(config)
  const imgSources = logoImgSources(config)
  const renderSecondStep: SecondStepRenderer = async (request, reply, status, { userId, ...o }) => {
    const passkey = userId !== undefined && passkeyRelyingParty(config, request) !== undefined && (await deps.passkeys.listForUser(userId)).length > 0
    if (passkey) allowOwnScripts(reply, imgSources)
    // Without an authenticator app there are no codes to type (recovery codes come with the app).
    const codes = !passkey || userId === undefined || (await secondFactors.summaryOf(userId).then((s) => s.totp === 'confirmed'))
    return await reply.code(status).type('text/html; charset=utf-8').send(secondStepPage({ ...brand, csrfToken: sessions.csrfToken(request, reply), ...o, passkey, codes }))
  }

  app.post<{ Body: SecondStepForm }>('/login/mfa', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    if (config.localMfa === 'off' || config.localAuth !== 'password') {
      return await reply.code(404).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: 'Not found', message: 'Two-step verification is not enabled here.', link: { href: '/login', text: 'Sign in' } }))
    }
    const form: SecondStepForm = typeof request.body === 'object' && request.body !== null ? request.body : {}
    const formNext = safeNextPath(form.next)
    const mfaToken = typeof form.mfa_token === 'string' && /^[\w-]{43}$/.test(form.mfa_token) ? form.mfa_token : undefined
    /** Back to the first step, saying why: the step cannot go on (expired, used, forged). */
    const restart = (status: number, reason: string, error: string, username?: string): FastifyReply => {
      metrics.loginFailure('local', reason)
      metrics.secondStepFailures.inc(reason)
      auditRequest(request, { audit: 'sign-in-failed', user: username, by: 'user', method: 'local', reason })
      return deps.renderLogin(request, reply, status, formNext, { error, ...(username !== undefined ? { username } : {}) })
    }
    if (!sessions.isCsrfValid(request, form.csrf_token)) {
      // The step itself may still be good: the same form again, with a fresh CSRF token.
      metrics.loginFailure('local', 'csrf')
      if (mfaToken === undefined) return restart(400, 'step-expired', MFA_MESSAGES.stepExpired)
      return await renderSecondStep(request, reply, 403, { mfaToken, next: formNext, error: MFA_MESSAGES.csrf })
    }
    const step = await secondFactors.findStep(mfaToken)
    if (step === undefined || mfaToken === undefined) return restart(400, 'step-expired', MFA_MESSAGES.stepExpired)
    const user = await users.findById(step.userId)
    if (user === undefined) return restart(400, 'step-expired', MFA_MESSAGES.stepExpired)
    if (!user.isActive) return restart(403, 'disabled', MESSAGES.disabled, user.username)

    const attempt = deps.attemptFor(request, user.username)
    // Counted before the check, as passwords are: a burst of guesses cannot slip under the limit.
    const wait = await throttle.begin(attempt)
    if (wait > 0) {
      metrics.loginFailure('local', 'throttled')
      metrics.secondStepFailures.inc('throttled')
      auditRequest(request, { audit: 'sign-in-failed', user: user.username, by: 'user', method: 'local', reason: 'mfa-throttled' })
      reply.header('retry-after', String(wait))
      return await renderSecondStep(request, reply, 429, { mfaToken, next: step.next, error: MFA_MESSAGES.throttled(wait), userId: user.id })
    }
    const checked = await secondFactors.checkCode(user.id, form.code)
    if (!checked.ok) {
      const reason = checked.reason === 'replayed' ? 'replayed' : 'wrong-code'
      metrics.loginFailure('local', `mfa-${reason}`)
      metrics.secondStepFailures.inc(reason)
      auditRequest(request, { audit: 'sign-in-failed', user: user.username, by: 'user', method: 'local', reason: `mfa-${reason}` })
      return await renderSecondStep(request, reply, 401, { mfaToken, next: step.next, error: reason === 'replayed' ? MFA_MESSAGES.replayed : MFA_MESSAGES.wrongCode, userId: user.id })
    }
    // The token is used once: two requests with right codes (two tabs) cannot both start a session.
    if (!(await secondFactors.useStep(mfaToken))) return restart(400, 'step-expired', MFA_MESSAGES.stepExpired, user.username)
    if (checked.factor === 'recovery') auditRequest(request, { audit: 'recovery-code-used', user: user.username, by: 'user', factor: 'recovery' })
    // `next` as the first step had it (bound in the token's row), not as this form says. Both steps'
    // attempts stop counting (the password's was left counted until now).
    return await deps.completeSignIn(request, reply, user, attempt, step.next, { secondFactor: checked.factor, attempts: 2 })
  })

  // ---- A passkey instead of a code (passkeys.js's #passkey-second-factor: JSON both ways) --------
  const passkey = passkeySecondFactor({ config, passkeys: deps.passkeys, clock: deps.clock, metrics })
  // Each options request stores a challenge: bounded per address, as the passkey sign-in's are.
  const optionsLimiter = new RateLimiter({ limit: PASSKEY_OPTIONS_PER_MINUTE, windowMs: 60_000, maxKeys: 10_000 })
  const refuseJson = (reply: FastifyReply, status: number, error: string, message: string): FastifyReply =>
    reply.code(status).header('cache-control', 'no-store').send({ error, message })

  /** The step's active user for a passkey request (CSRF header, usable token), or the refusal sent. */
  const passkeyStep = async (request: FastifyRequest<{ Body: PasskeyStepBody }>, reply: FastifyReply): Promise<{ user: User, mfaToken: string, next: string } | FastifyReply> => {
    if (config.localMfa === 'off' || config.localAuth !== 'password') return refuseJson(reply, 404, 'not_found', 'Two-step verification is not enabled here.')
    if (!sessions.isCsrfValid(request, request.headers[CSRF_HEADER])) return refuseJson(reply, 403, 'csrf', MFA_MESSAGES.csrf)
    const body = typeof request.body === 'object' && request.body !== null ? request.body : {}
    const mfaToken = typeof body.mfa_token === 'string' ? body.mfa_token : undefined
    const step = await secondFactors.findStep(mfaToken)
    const user = step === undefined ? undefined : await users.findById(step.userId)
    if (step === undefined || mfaToken === undefined || user === undefined) {
      metrics.secondStepFailures.inc('step-expired')
      return refuseJson(reply, 400, 'step_expired', MFA_MESSAGES.stepExpired)
    }
    if (!user.isActive) return refuseJson(reply, 403, 'disabled', MESSAGES.disabled)
    return { user, mfaToken, next: step.next }
  }

  app.post<{ Body: PasskeyStepBody }>(`${SECOND_STEP_PASSKEY_PATH}/options`, { bodyLimit: PASSKEY_BODY_LIMIT }, async (request, reply) => {
    const step = await passkeyStep(request, reply)
    if (!('user' in step)) return step
    const limit = optionsLimiter.hit(clientAddressKey(request.ip), deps.clock.now())
    if (!limit.allowed) {
      reply.header('retry-after', String(limit.retryAfter))
      return refuseJson(reply, 429, 'too_many_requests', `Too many passkey requests came from your network address. Try again in ${limit.retryAfter} seconds.`)
    }
    const options = await passkey.options(request, step.user.id)
    if (options === undefined) return refuseJson(reply, 400, 'no_passkey', 'This account has no passkey that can be used here: enter a code instead.')
    return await reply.header('cache-control', 'no-store').send(options)
  })

  app.post<{ Body: PasskeyStepBody }>(SECOND_STEP_PASSKEY_PATH, { bodyLimit: PASSKEY_BODY_LIMIT }, async (request, reply) => {
    const step = await passkeyStep(request, reply)
    if (!('user' in step)) return step
    const { user } = step
    const attempt = deps.attemptFor(request, user.username)
    // Counted before the check, as codes and passwords are.
    const wait = await throttle.begin(attempt)
    if (wait > 0) {
      metrics.loginFailure('local', 'throttled')
      metrics.secondStepFailures.inc('throttled')
      auditRequest(request, { audit: 'sign-in-failed', user: user.username, by: 'user', method: 'local', factor: 'passkey', reason: 'mfa-throttled' })
      reply.header('retry-after', String(wait))
      return refuseJson(reply, 429, 'throttled', MFA_MESSAGES.throttled(wait))
    }
    const verified = await passkey.verify(request, user, request.body?.response)
    if (!verified.ok) {
      metrics.loginFailure('local', `passkey-${verified.reason}`)
      metrics.secondStepFailures.inc('passkey-refused')
      auditRequest(request, { audit: 'sign-in-failed', user: user.username, by: 'user', method: 'local', factor: 'passkey', reason: `passkey-${verified.reason}` })
      request.log.info({ reason: verified.reason, user: user.username }, 'second step: passkey refused')
      return refuseJson(reply, verified.reason === 'wrong-user' ? 403 : 401, verified.reason, 'This passkey could not be verified for your account. Try again, or enter a code.')
    }
    if (!(await secondFactors.useStep(step.mfaToken))) {
      metrics.secondStepFailures.inc('step-expired')
      return refuseJson(reply, 400, 'step_expired', MFA_MESSAGES.stepExpired)
    }
    return await deps.completeSignIn(request, reply, user, attempt, step.next, { secondFactor: 'passkey', attempts: 2, json: true })
  })

  return { renderSecondStep }
}
