// Passkey routes: the signed-in local password user's page to add and remove passkeys, and sign-in
// with a passkey alone from the login page. Registered always (the route table is the same in every
// configuration), answering 404 unless LOCAL_MFA is on with LOCAL_AUTH=password (availability.ts).
// The JSON endpoints take the CSRF token in the x-authgate-csrf header; every refusal is a 4xx with
// a JSON body `{ error, message }`, counted and, where it concerns an account, audited. Adding a
// passkey needs the account's password again, with the options request (src/auth/local/reauth.ts):
// the challenge the answer must sign is stored only after that check.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../../config/index.js'
import type { UserRepository, User } from '../../db/users.js'
import { MAX_PASSKEYS_PER_USER, type PasskeyRepository } from '../../db/passkeys.js'
import type { Sessions } from '../../session/index.js'
import type { SessionPayload } from '../../session/session.js'
import type { Metrics } from '../../ops/metrics.js'
import type { Clock } from '../../clock.js'
import { auditRequest } from '../../ops/audit.js'
import { brandOf, logoImgSources, messagePage } from '../../pages/layout.js'
import { allowOwnScripts } from '../../pages/security-headers.js'
import { PASSKEYS_PAGE_PATH, passkeysPage } from '../../pages/passkeys.js'
import { safeNextPath } from '../next-url.js'
import { clientAddressKey } from '../../net/client-address.js'
import { RateLimiter } from '../../net/rate-limit.js'
import type { Attempt, LoginThrottle } from '../local/throttle.js'
import { confirmPassword } from '../local/reauth.js'
import { PasskeyCeremonies, type PasskeyFailure } from './ceremonies.js'
import { passkeyRelyingParty, passkeysEnabled } from './availability.js'
import { relyingPartyProblem, type RelyingParty } from './relying-party.js'
import { isCredentialId, parsePasskeyName } from './input.js'

export const CSRF_HEADER = 'x-authgate-csrf'
/** Options requests (each stores a challenge) per client address per minute, sign-in and registration each. */
export const PASSKEY_OPTIONS_PER_MINUTE = 30
const RATE_LIMIT_ADDRESSES = 10_000
/** A WebAuthn answer is a few kilobytes; an attestation with a certificate chain could be more, but 'none' is asked. */
const BODY_LIMIT = 32 * 1024

export interface PasskeyRouteDeps {
  config: Config
  users: UserRepository
  passkeys: PasskeyRepository
  sessions: Sessions
  metrics: Metrics
  clock: Clock
  /** The sign-in throttle (one for the whole gateway): passkey sign-in failures and wrong passwords on the add form count there. */
  throttle: LoginThrottle
  /** The throttle's view of an attempt at this username from this request (its address, its device cookie). */
  attemptFor: (request: FastifyRequest, username: string) => Attempt
  /** Whether the user still has a second factor (an authenticator app or a passkey): LOCAL_MFA=required holds those without. */
  hasSecondFactor: (userId: number) => Promise<boolean>
}

/** What each refusal says to the user (the reasons are ceremonies.ts's). */
const FAILURE_MESSAGES: Record<PasskeyFailure, string> = {
  malformed: 'That is not a passkey answer.',
  challenge: 'This passkey request has expired or was already used. Try again.',
  origin: 'This passkey answer was made for another site.',
  'unknown-credential': 'This passkey is not registered here.',
  'wrong-user': 'This passkey belongs to another account.',
  'not-passwordless': 'This passkey is a second factor only: sign in with your password, or add a passkey for signing in without one.',
  'user-verification': 'The authenticator did not verify you (PIN or biometrics), which signing in without a password requires.',
  counter: 'This passkey answer was refused: its authenticator may have been copied. Contact your administrator.',
  duplicate: 'This passkey is registered already.',
  'too-many': `An account may hold ${MAX_PASSKEYS_PER_USER} passkeys; remove one to add another.`,
  invalid: 'This passkey answer could not be verified.'
}

const FAILURE_STATUS: Partial<Record<PasskeyFailure, number>> = { 'wrong-user': 403, 'not-passwordless': 403, duplicate: 409, 'too-many': 409 }

interface Json { [key: string]: unknown }
const bodyOf = (request: FastifyRequest): Json => typeof request.body === 'object' && request.body !== null && !Array.isArray(request.body) ? request.body as Json : {}

export const passkeyRoutes: FastifyPluginAsync<PasskeyRouteDeps> = async (app, deps) => {
  const { config, users, passkeys, sessions, metrics, clock } = deps
  const enabled = passkeysEnabled(config)
  const problem = enabled ? relyingPartyProblem(config) : undefined
  if (problem !== undefined) app.log.warn(problem)
  const ceremonies = new PasskeyCeremonies(passkeys, clock, config.appName)
  const { throttle } = deps
  const brand = brandOf(config)
  const imgSources = logoImgSources(config)
  const limitOptions = { limit: PASSKEY_OPTIONS_PER_MINUTE, windowMs: 60_000, maxKeys: RATE_LIMIT_ADDRESSES }
  const limiters = { signIn: new RateLimiter(limitOptions), register: new RateLimiter(limitOptions) }

  const refuse = (reply: FastifyReply, status: number, error: string, message: string): FastifyReply =>
    reply.code(status).header('cache-control', 'no-store').send({ error, message })

  /** Not offered here: as any unknown /_authgate/ path (a page for a browser's navigation). */
  const notFound = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (request.method === 'GET' && request.headers.accept?.includes('text/html') === true) {
      return reply.code(404).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: 'Not found', message: 'Passkeys are not enabled on this gateway.', link: { href: '/', text: 'Back' } }))
    }
    return refuse(reply, 404, 'not_found', 'Passkeys are not enabled on this gateway.')
  }

  /** The relying party, or a refusal: passkeys off (404), or not available at this address (400). */
  const relyingParty = (request: FastifyRequest, reply: FastifyReply): RelyingParty | FastifyReply => {
    if (!enabled) return notFound(request, reply)
    const rp = passkeyRelyingParty(config, request)
    if (rp === undefined) return refuse(reply, 400, 'passkeys_unavailable', 'Passkeys are not available at this address: set PUBLIC_URL (in development, open the gateway as http://localhost).')
    return rp
  }

  /** Past the options budget of this address: 429 (each options request stores a challenge). */
  const limited = (limiter: RateLimiter, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined => {
    const decision = limiter.hit(clientAddressKey(request.ip), clock.now())
    if (decision.allowed) return undefined
    if (decision.firstRefusal) request.log.info({ ip: request.ip, route: request.url.split('?', 1)[0] }, 'passkey options: too many requests from one client address; refused (429) until its minute ends')
    metrics.loginFailure('local', 'passkey-rate-limited')
    reply.header('retry-after', String(decision.retryAfter))
    return refuse(reply, 429, 'too_many_requests', `Too many passkey requests came from your network address. Try again in ${decision.retryAfter} seconds.`)
  }

  /**
   * The signed-in local password user of this request, or why not: undefined session → 401,
   * SSO → 403 (their provider handles their sign-in), a user gone or disabled → 401.
   */
  const accountUser = async (request: FastifyRequest): Promise<{ user: User, session: SessionPayload } | 'signed-out' | 'sso' | 'no-password'> => {
    const checked = sessions.check(request)
    if (!checked.ok) return 'signed-out'
    if (checked.session.m !== 'local') return 'sso'
    const user = await users.findById(checked.session.uid)
    if (user === undefined || !user.isActive) return 'signed-out'
    if (user.passwordHash === null) return 'no-password'
    return { user, session: checked.session }
  }
  const ACCOUNT_REFUSALS = {
    'signed-out': [401, 'unauthenticated', 'Sign in first.'],
    sso: [403, 'sso_account', 'Your sign-in is managed by your single sign-on provider: add passkeys there.'],
    'no-password': [403, 'no_password', 'Passkeys are for accounts that sign in with a password.']
  } as const
  const refuseAccount = (reply: FastifyReply, why: keyof typeof ACCOUNT_REFUSALS): FastifyReply => {
    const [status, error, message] = ACCOUNT_REFUSALS[why]
    return refuse(reply, status, error, message)
  }

  // ---- The account page ---------------------------------------------------------------------

  app.get<{ Querystring: { added?: string, removed?: string } }>(PASSKEYS_PAGE_PATH, async (request, reply) => {
    if (!enabled) return notFound(request, reply)
    const account = await accountUser(request)
    if (account === 'signed-out') return await reply.redirect('/login?next=' + encodeURIComponent(PASSKEYS_PAGE_PATH), 302)
    if (typeof account === 'string') {
      const [status, , message] = ACCOUNT_REFUSALS[account]
      return reply.code(status).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: 'Passkeys', message, tone: 'info', link: { href: '/', text: 'Back' } }))
    }
    const list = await passkeys.listForUser(account.user.id)
    const rp = passkeyRelyingParty(config, request)
    allowOwnScripts(reply, imgSources)
    const notice = request.query.added !== undefined ? 'Passkey added.' : request.query.removed !== undefined ? 'Passkey removed.' : undefined
    return reply.type('text/html; charset=utf-8').send(passkeysPage({
      ...brand,
      username: account.user.username,
      csrfToken: sessions.csrfToken(request, reply),
      passkeys: list,
      canAdd: rp !== undefined && list.length < MAX_PASSKEYS_PER_USER,
      ...(rp === undefined ? { error: 'Passkeys cannot be added at this address: the gateway needs PUBLIC_URL (in development, open it as http://localhost).' } : notice !== undefined ? { notice } : {})
    }))
  })

  app.post(`${PASSKEYS_PAGE_PATH}/options`, { bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const rp = relyingParty(request, reply)
    if (!('origin' in rp)) return rp
    if (!sessions.isCsrfValid(request, request.headers[CSRF_HEADER])) return refuse(reply, 403, 'csrf', 'This page has expired. Reload it and try again.')
    const account = await accountUser(request)
    if (typeof account === 'string') return refuseAccount(reply, account)
    const tooMany = limited(limiters.register, request, reply)
    if (tooMany !== undefined) return tooMany
    const body = bodyOf(request)
    const passwordless = body.passwordless
    if (passwordless !== undefined && typeof passwordless !== 'boolean') return refuse(reply, 400, 'bad_request', '`passwordless` must be true or false.')
    // The password again, before a challenge is stored: a session alone (a stolen cookie, a browser
    // left open) must not add a passkey, least of all one that signs in without the password. The
    // registration (POST below) needs no second check: it must answer this challenge, stored for
    // this user only and used once. Held sessions (LOCAL_MFA=required) are asked too.
    const checked = await confirmPassword(deps, request, account.user, body.password, 'passkey')
    if (!checked.ok) {
      if (checked.status === 429) reply.header('retry-after', String(checked.retryAfter))
      request.log.info({ reason: checked.reason, user: account.user.username }, 'passkey registration options refused')
      return refuse(reply, checked.status, checked.reason === 'missing-password' ? 'password_required' : checked.reason === 'wrong-password' ? 'wrong_password' : 'too_many_requests', checked.message)
    }
    return await reply.header('cache-control', 'no-store').send(await ceremonies.registrationOptions(rp, account.user, passwordless === true))
  })

  app.post(PASSKEYS_PAGE_PATH, { bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const rp = relyingParty(request, reply)
    if (!('origin' in rp)) return rp
    if (!sessions.isCsrfValid(request, request.headers[CSRF_HEADER])) return refuse(reply, 403, 'csrf', 'This page has expired. Reload it and try again.')
    const account = await accountUser(request)
    if (typeof account === 'string') return refuseAccount(reply, account)
    const body = bodyOf(request)
    const name = parsePasskeyName(body.name)
    if (name === undefined) return refuse(reply, 400, 'invalid_name', 'Give the passkey a name of 1 to 64 characters.')
    const result = await ceremonies.register(rp, account.user.id, body.response, name)
    if (!result.ok) {
      request.log.info({ reason: result.reason, user: account.user.username }, 'passkey registration refused')
      return refuse(reply, FAILURE_STATUS[result.reason] ?? 400, result.reason, FAILURE_MESSAGES[result.reason])
    }
    metrics.passkey('added')
    auditRequest(request, { audit: 'passkey-added', user: account.user.username, by: 'user', passkey: name, passwordless: result.value.passwordless })
    // As after enrolling an authenticator app: the session that enrolled (held on the account page with
    // LOCAL_MFA=required, or a password-only one) is replaced by one that passed the factor just proved.
    await sessions.start(request, account.user, 'local', { secondFactor: 'passkey' })
    return await reply.code(201).header('cache-control', 'no-store').send({ id: result.value.id, name, passwordless: result.value.passwordless })
  })

  // A plain form: removing works without JavaScript.
  app.post<{ Body: { csrf_token?: unknown, id?: unknown } }>(`${PASSKEYS_PAGE_PATH}/remove`, { bodyLimit: 16 * 1024 }, async (request, reply) => {
    if (!enabled) return notFound(request, reply)
    const form = bodyOf(request)
    const page = (status: number, message: string): FastifyReply =>
      reply.code(status).type('text/html; charset=utf-8').send(messagePage({ ...brand, title: 'Passkeys', message, link: { href: PASSKEYS_PAGE_PATH, text: 'Back to your passkeys' } }))
    if (!sessions.isCsrfValid(request, form.csrf_token)) return page(403, 'This form has expired. Please try again.')
    const account = await accountUser(request)
    if (account === 'signed-out') return await reply.redirect('/login?next=' + encodeURIComponent(PASSKEYS_PAGE_PATH), 303)
    if (typeof account === 'string') return page(ACCOUNT_REFUSALS[account][0], ACCOUNT_REFUSALS[account][2])
    const removed = isCredentialId(form.id) ? await passkeys.remove(account.user.id, form.id) : undefined
    // Another user's passkey reads as unknown: ids are not to be probed.
    if (removed === undefined) return page(404, 'You have no such passkey (it may have been removed already).')
    metrics.passkey('removed')
    auditRequest(request, { audit: 'passkey-removed', user: account.user.username, by: 'user', passkey: removed.name, passwordless: removed.passwordless })
    // With LOCAL_MFA=required and no factor left, the session is held until the user enrols again.
    if (config.localMfa === 'required' && !(await deps.hasSecondFactor(account.user.id))) await sessions.start(request, account.user, 'local', { enrolmentPending: true })
    return await reply.redirect(`${PASSKEYS_PAGE_PATH}?removed=1`, 303)
  })

  // ---- Sign-in with a passkey alone ----------------------------------------------------------

  app.post('/login/passkey/options', { bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const rp = relyingParty(request, reply)
    if (!('origin' in rp)) return rp
    if (!sessions.isCsrfValid(request, request.headers[CSRF_HEADER])) return refuse(reply, 403, 'csrf', 'This page has expired. Reload it and try again.')
    const tooMany = limited(limiters.signIn, request, reply)
    if (tooMany !== undefined) return tooMany
    return await reply.header('cache-control', 'no-store').send(await ceremonies.signInOptions(rp))
  })

  app.post('/login/passkey', { bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const rp = relyingParty(request, reply)
    if (!('origin' in rp)) return rp
    const body = bodyOf(request)
    const next = safeNextPath(body.next)
    /** Counted, audited (with the account when the passkey named one), and a JSON refusal. */
    const fail = (status: number, reason: string, message: string, username?: string): FastifyReply => {
      metrics.loginFailure('local', `passkey-${reason}`)
      auditRequest(request, { audit: 'sign-in-failed', user: username, by: 'user', method: 'local', factor: 'passkey', reason: `passkey-${reason}` })
      return refuse(reply, status, reason, message)
    }
    if (!sessions.isCsrfValid(request, request.headers[CSRF_HEADER])) return fail(403, 'csrf', 'This page has expired. Reload it and try again.')
    let user: User | undefined
    let attempt: Attempt | undefined
    let wait = 0
    const result = await ceremonies.verifySignIn(rp, body.response, async (passkey) => {
      user = await users.findById(passkey.userId)
      if (user === undefined) return 'unknown-credential'
      // The same throttle as passwords: failures with this user's passkeys count against the account.
      attempt = { address: clientAddressKey(request.ip), username: user.username }
      wait = await throttle.begin(attempt)
      return wait > 0 ? 'invalid' : undefined
    })
    if (wait > 0) {
      reply.header('retry-after', String(wait))
      return fail(429, 'throttled', `Too many failed sign-in attempts. Try again in ${Math.ceil(wait / 60)} minute${wait > 60 ? 's' : ''}.`, user?.username)
    }
    if (!result.ok) {
      request.log.info({ reason: result.reason }, 'passkey sign-in refused')
      return fail(FAILURE_STATUS[result.reason] ?? 400, result.reason, FAILURE_MESSAGES[result.reason], user?.username)
    }
    if (user === undefined || attempt === undefined) return fail(400, 'unknown-credential', FAILURE_MESSAGES['unknown-credential'])
    if (!user.isActive) return fail(403, 'disabled', 'This account is disabled. Contact your administrator.', user.username)
    if (user.passwordHash === null) return fail(403, 'no-password', 'Passkeys are for accounts that sign in with a password.', user.username)
    await throttle.succeeded(attempt)
    const promote = config.adminUsernames.includes(user.username) && !user.isAdmin
    user = await users.recordLogin(user.id, promote ? { isAdmin: true } : {})
    if (promote) auditRequest(request, { audit: 'admin-granted', user: user.username, by: 'admin-usernames' })
    await sessions.start(request, user, 'local', { secondFactor: 'passkey' })
    metrics.login('local')
    metrics.passkey('sign-in')
    auditRequest(request, { audit: 'passkey-used', user: user.username, by: 'user', factor: 'sign-in', passkey: result.value.name })
    auditRequest(request, { audit: 'sign-in', user: user.username, by: 'user', method: 'local', factor: 'passkey', admin: user.isAdmin })
    return await reply.header('cache-control', 'no-store').send({ location: next })
  })
}
