// The account page (/_authgate/account) and its forms: the signed-in user's second factors (TOTP with
// its QR code, recovery codes), and "sign out everywhere". A page for the signed-in user only; every
// form carries the CSRF token; removing the authenticator or replacing recovery codes needs a current
// code, checked (and counted) like the second sign-in step; adding an authenticator app needs the
// password again (src/auth/local/reauth.ts: a held session cookie must not be enough to enrol one).
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import QRCode from 'qrcode'
import type { Config } from '../../config/index.js'
import type { UserRepository } from '../../db/users.js'
import type { Sessions } from '../../session/index.js'
import type { SecondFactorKind, SessionPayload } from '../../session/session.js'
import type { RevocationList } from '../../session/revocations.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import { brandOf, messagePage } from '../../pages/layout.js'
import { accountPage, MFA_MESSAGES, recoveryCodesPage, totpEnrolmentPage, type AccountPageOptions } from '../../pages/second-factor.js'
import { RETRY_AFTER_SECONDS, SESSIONS_UNAVAILABLE } from '../../pages/unavailable.js'
import type { Attempt, LoginThrottle } from '../local/throttle.js'
import { confirmPassword } from '../local/reauth.js'
import type { SecondFactors } from './service.js'
import { ACCOUNT_PATH, secondFactorHold } from './gate.js'

export interface AccountDeps {
  config: Config
  users: UserRepository
  sessions: Sessions
  metrics: Metrics
  secondFactors: SecondFactors
  throttle: LoginThrottle
  /** The throttle's view of an attempt at this username from this request (its address, its device cookie). */
  attemptFor: (request: FastifyRequest, username: string) => Attempt
  /** Re-read at once after "sign out everywhere", so this instance refuses the sessions now. */
  revocations: Pick<RevocationList, 'refresh'>
}

interface CsrfForm { csrf_token?: unknown, code?: unknown, password?: unknown }

/** A page request (a navigation, or a form posted from a page) rather than an API call. */
function wantsPage (request: FastifyRequest): boolean {
  return request.headers.accept?.includes('text/html') === true && ['GET', 'HEAD', 'POST'].includes(request.method)
}

export const accountRoutes: FastifyPluginAsync<AccountDeps> = async (app, deps) => {
  const { config, users, sessions, secondFactors, throttle } = deps
  const brand = brandOf(config)
  const mfaEnabled = config.localMfa !== 'off' && config.localAuth === 'password'

  /** The signed-in user's session, or the answer already sent (302 to sign in, 401 JSON, 503). */
  const signedIn = async (request: FastifyRequest, reply: FastifyReply): Promise<SessionPayload | undefined> => {
    const checked = sessions.check(request)
    if (checked.ok) return checked.session
    if (checked.reason === 'unverifiable') {
      void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS))
      if (wantsPage(request)) await reply.type('text/html; charset=utf-8').send(messagePage({ ...brand, ...SESSIONS_UNAVAILABLE, link: { href: ACCOUNT_PATH, text: 'Try again' } }))
      else await reply.send({ error: 'sessions_unavailable', message: SESSIONS_UNAVAILABLE.message })
      return undefined
    }
    if (wantsPage(request)) await reply.redirect('/login?next=' + encodeURIComponent(ACCOUNT_PATH), request.method === 'POST' ? 303 : 302)
    else await reply.code(401).send({ error: 'unauthenticated' })
    return undefined
  }

  const showAccount = async (request: FastifyRequest, reply: FastifyReply, session: SessionPayload, status = 200, extra: Pick<AccountPageOptions, 'error' | 'notice'> = {}): Promise<FastifyReply> => {
    const local = session.m === 'local'
    const summary = local && mfaEnabled ? await secondFactors.summaryOf(session.uid) : { totp: 'none' as const, recoveryCodesLeft: 0, passkeys: 0 }
    return await reply.code(status).type('text/html; charset=utf-8').send(accountPage({
      ...brand,
      csrfToken: sessions.csrfToken(request, reply),
      username: session.u,
      sso: !local,
      mfaEnabled,
      required: config.localMfa === 'required',
      totp: summary.totp,
      recoveryCodesLeft: summary.recoveryCodesLeft,
      passkeys: summary.passkeys,
      held: secondFactorHold(config.localMfa, session) !== undefined,
      ...extra
    }))
  }

  /** A form of the page: signed in, a valid CSRF token, and (for the factor forms) a local account with LOCAL_MFA on. */
  const formSession = async (request: FastifyRequest<{ Body: CsrfForm }>, reply: FastifyReply, factorForm: boolean): Promise<SessionPayload | undefined> => {
    const session = await signedIn(request, reply)
    if (session === undefined) return undefined
    const form = typeof request.body === 'object' && request.body !== null ? request.body : {}
    if (!sessions.isCsrfValid(request, form.csrf_token)) {
      await showAccount(request, reply, session, 403, { error: MFA_MESSAGES.csrf })
      return undefined
    }
    if (factorForm && (!mfaEnabled || session.m !== 'local')) {
      await reply.code(404).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: 'Not available', message: 'Second factors are not managed here for this account.', link: { href: ACCOUNT_PATH, text: 'Back to your account' } }))
      return undefined
    }
    return session
  }

  const enrolmentPage = async (request: FastifyRequest, reply: FastifyReply, status: number, enrolment: { secret: string, uri: string }, error?: string): Promise<FastifyReply> => {
    // Drawn here (no external service), as an SVG image in a data: URI: the pages' CSP allows data: images.
    const svg = await QRCode.toString(enrolment.uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 0 })
    return await reply.code(status).type('text/html; charset=utf-8').send(totpEnrolmentPage({
      ...brand, csrfToken: sessions.csrfToken(request, reply), ...enrolment, qrDataUri: 'data:image/svg+xml;base64,' + Buffer.from(svg).toString('base64'), ...(error !== undefined ? { error } : {})
    }))
  }

  /**
   * A current code for the forms that weaken or replace a factor: counted by the sign-in throttle
   * (a stolen session must not be a way to guess codes). undefined: the answer was sent.
   */
  const currentCode = async (request: FastifyRequest<{ Body: CsrfForm }>, reply: FastifyReply, session: SessionPayload): Promise<'totp' | 'recovery' | undefined> => {
    const attempt = deps.attemptFor(request, session.u)
    const wait = await throttle.begin(attempt)
    if (wait > 0) {
      reply.header('retry-after', String(wait))
      await showAccount(request, reply, session, 429, { error: MFA_MESSAGES.throttled(wait) })
      return undefined
    }
    const checked = await secondFactors.checkCode(session.uid, request.body?.code)
    if (!checked.ok) {
      await showAccount(request, reply, session, 400, { error: checked.reason === 'replayed' ? MFA_MESSAGES.replayed : MFA_MESSAGES.wrongCode })
      return undefined
    }
    await throttle.succeeded(attempt)
    if (checked.factor === 'recovery') auditRequest(request, { audit: 'recovery-code-used', user: session.u, by: 'user', factor: 'recovery' })
    return checked.factor
  }

  /** A new session for the same user (the current one ends): after enrolling, or removing, a factor. */
  const restart = async (request: FastifyRequest, session: SessionPayload, outcome: { secondFactor?: SecondFactorKind, enrolmentPending?: boolean }): Promise<void> => {
    const user = await users.findById(session.uid)
    if (user === undefined) return
    await sessions.start(request, user, 'local', outcome)
  }

  app.get(ACCOUNT_PATH, async (request, reply) => {
    const session = await signedIn(request, reply)
    if (session === undefined) return reply
    return await showAccount(request, reply, session)
  })

  app.post<{ Body: CsrfForm }>(ACCOUNT_PATH + '/totp', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const session = await formSession(request, reply, true)
    if (session === undefined) return reply
    // The password again, before anything is stored: a session alone (a stolen cookie, a browser left
    // open) must not enrol an app its owner does not have. A held session (LOCAL_MFA=required) is asked
    // too: the same form for everyone, and the hold may be hours old.
    const user = await users.findById(session.uid)
    if (user === undefined || !user.isActive) return await showAccount(request, reply, session, 401, { error: 'Sign in again to continue.' })
    const checked = await confirmPassword(deps, request, user, request.body?.password, 'totp')
    if (!checked.ok) {
      if (checked.status === 429) reply.header('retry-after', String(checked.retryAfter))
      return await showAccount(request, reply, session, checked.status, { error: checked.message })
    }
    const enrolment = await secondFactors.beginTotp(session.uid, session.u, config.appName)
    if (enrolment === undefined) return await showAccount(request, reply, session, 409, { error: MFA_MESSAGES.alreadyEnrolled })
    return await enrolmentPage(request, reply, 200, enrolment)
  })

  app.post<{ Body: CsrfForm }>(ACCOUNT_PATH + '/totp/confirm', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const session = await formSession(request, reply, true)
    if (session === undefined) return reply
    const confirmed = await secondFactors.confirmTotp(session.uid, request.body?.code)
    if (!confirmed.ok) {
      const pending = confirmed.reason === 'wrong-code' ? await secondFactors.pendingTotp(session.uid, session.u, config.appName) : undefined
      if (pending !== undefined) return await enrolmentPage(request, reply, 400, pending, MFA_MESSAGES.wrongCode)
      return await showAccount(request, reply, session, 409, { error: MFA_MESSAGES.noPendingEnrolment })
    }
    auditRequest(request, { audit: 'second-factor-enrolled', user: session.u, by: 'user', factor: 'totp' })
    // The session that enrolled (held on this page with LOCAL_MFA=required, or a password-only one)
    // is replaced by one that passed the factor it has just proved.
    await restart(request, session, { secondFactor: 'totp' })
    return await reply.type('text/html; charset=utf-8').send(recoveryCodesPage({ ...brand, codes: confirmed.recoveryCodes, notice: MFA_MESSAGES.enrolled, continueTo: ACCOUNT_PATH }))
  })

  app.post<{ Body: CsrfForm }>(ACCOUNT_PATH + '/totp/remove', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const session = await formSession(request, reply, true)
    if (session === undefined) return reply
    const factor = await currentCode(request, reply, session)
    if (factor === undefined) return reply
    await secondFactors.removeTotp(session.uid)
    auditRequest(request, { audit: 'second-factor-removed', user: session.u, by: 'user', factor: 'totp' })
    // With LOCAL_MFA=required and no factor left (no passkey either), its session is held until it enrols again.
    // With a passkey left, the new session stays one that passed a factor (the one it signed in with, or
    // the code just checked): started without one, LOCAL_MFA=required would hold it although the user has a factor.
    const factorLeft = await secondFactors.hasConfirmedFactor(session.uid)
    const required = config.localMfa === 'required' && !factorLeft
    const outcome = required ? { enrolmentPending: true } : factorLeft ? { secondFactor: session.f ?? factor } : {}
    await restart(request, session, outcome)
    const next = { ...session, f: outcome.secondFactor, ...(required ? { pe: true as const } : {}) }
    return await showAccount(request, reply, next, 200, { notice: MFA_MESSAGES.totpRemoved })
  })

  app.post<{ Body: CsrfForm }>(ACCOUNT_PATH + '/recovery-codes', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const session = await formSession(request, reply, true)
    if (session === undefined) return reply
    if (!(await secondFactors.hasConfirmedFactor(session.uid))) return await showAccount(request, reply, session, 409, { error: MFA_MESSAGES.noPendingEnrolment })
    if (await currentCode(request, reply, session) === undefined) return reply
    const codes = await secondFactors.regenerateRecoveryCodes(session.uid)
    auditRequest(request, { audit: 'recovery-codes-regenerated', user: session.u, by: 'user', factor: 'recovery' })
    return await reply.type('text/html; charset=utf-8').send(recoveryCodesPage({ ...brand, codes, notice: 'New recovery codes replace the old ones, which no longer work.', continueTo: ACCOUNT_PATH }))
  })

  app.post<{ Body: CsrfForm }>(ACCOUNT_PATH + '/sign-out-everywhere', { bodyLimit: 16 * 1024 }, async (request, reply) => {
    const session = await formSession(request, reply, false)
    if (session === undefined) return reply
    // As `authgate sessions revoke`: every session of the user ends (records ended, cutoff set);
    // this instance re-reads the list now, the others within their refresh interval.
    await users.revokeSessions(session.u)
    auditRequest(request, { audit: 'sessions-revoked', user: session.u, by: 'user', reason: 'sign-out-everywhere' })
    await sessions.end(request, session)
    await deps.revocations.refresh()
    return await reply.redirect('/login?signed_out=1', 303)
  })
}
