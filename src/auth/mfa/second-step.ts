// POST /login/mfa: the second sign-in step (LOCAL_MFA). The password step answered a page whose form
// carries a token binding it to that step (step-token.ts: 5 minutes, once); here the code typed (a
// TOTP code or a recovery code) is checked, counted by the same throttle as passwords, and a right
// one starts the session, marked with the factor passed, and goes on to the `next` of the first step.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../../config/index.js'
import type { User, UserRepository } from '../../db/users.js'
import type { Sessions } from '../../session/index.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import { brandOf, messagePage } from '../../pages/layout.js'
import { MESSAGES } from '../../pages/login.js'
import type { LoginRenderer } from '../../pages/login-renderer.js'
import { MFA_MESSAGES, secondStepPage } from '../../pages/second-factor.js'
import { safeNextPath } from '../next-url.js'
import type { Attempt, LoginThrottle } from '../local/throttle.js'
import type { SecondFactors } from './service.js'
import type { SecondFactorKind } from '../../session/session.js'

export interface SecondStepDeps {
  config: Config
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
  secondFactors: SecondFactors
  throttle: LoginThrottle
  attemptFor: (request: FastifyRequest, username: string) => Attempt
  completeSignIn: (request: FastifyRequest, reply: FastifyReply, user: User, attempt: Attempt, next: string, outcome: { secondFactor?: SecondFactorKind, attempts?: number }) => Promise<FastifyReply>
  renderLogin: LoginRenderer
}

interface SecondStepForm { code?: unknown, csrf_token?: unknown, mfa_token?: unknown, next?: unknown }

export type SecondStepRenderer = (request: FastifyRequest, reply: FastifyReply, status: number, o: { mfaToken: string, next: string, error?: string }) => FastifyReply

export async function secondStepRoutes (app: FastifyInstance, deps: SecondStepDeps): Promise<{ renderSecondStep: SecondStepRenderer }> {
  const { config, users, sessions, metrics, secondFactors, throttle } = deps
  const brand = brandOf(config)
  const renderSecondStep: SecondStepRenderer = (request, reply, status, o) =>
    reply.code(status).type('text/html; charset=utf-8').send(secondStepPage({ ...brand, csrfToken: sessions.csrfToken(request, reply), ...o }))

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
      return renderSecondStep(request, reply, 403, { mfaToken, next: formNext, error: MFA_MESSAGES.csrf })
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
      return renderSecondStep(request, reply, 429, { mfaToken, next: step.next, error: MFA_MESSAGES.throttled(wait) })
    }
    const checked = await secondFactors.checkCode(user.id, form.code)
    if (!checked.ok) {
      const reason = checked.reason === 'replayed' ? 'replayed' : 'wrong-code'
      metrics.loginFailure('local', `mfa-${reason}`)
      metrics.secondStepFailures.inc(reason)
      auditRequest(request, { audit: 'sign-in-failed', user: user.username, by: 'user', method: 'local', reason: `mfa-${reason}` })
      return renderSecondStep(request, reply, 401, { mfaToken, next: step.next, error: reason === 'replayed' ? MFA_MESSAGES.replayed : MFA_MESSAGES.wrongCode })
    }
    // The token is used once: two requests with right codes (two tabs) cannot both start a session.
    if (!(await secondFactors.useStep(mfaToken))) return restart(400, 'step-expired', MFA_MESSAGES.stepExpired, user.username)
    if (checked.factor === 'recovery') auditRequest(request, { audit: 'recovery-code-used', user: user.username, by: 'user', factor: 'recovery' })
    // `next` as the first step had it (bound in the token's row), not as this form says. Both steps'
    // attempts stop counting (the password's was left counted until now).
    return await deps.completeSignIn(request, reply, user, attempt, step.next, { secondFactor: checked.factor, attempts: 2 })
  })

  return { renderSecondStep }
}
