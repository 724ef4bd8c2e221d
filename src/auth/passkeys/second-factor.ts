// A passkey as the second step after a password (LOCAL_MFA), for the second-step routes (POST
// /login/mfa and its page): the options for one user's passkeys, and the verification of the
// browser's answer for that user. User verification is preferred, not required (the password was
// the first factor); a passkey of another user is refused; a challenge is used once and only for
// this user. The browser side is passkeys.js's `#passkey-second-factor` button.
import type { FastifyRequest } from 'fastify'
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server'
import type { PasskeyRepository, Passkey } from '../../db/passkeys.js'
import type { Clock } from '../../clock.js'
import type { Metrics } from '../../ops/metrics.js'
import { auditRequest } from '../../ops/audit.js'
import { PasskeyCeremonies, type PasskeyResult } from './ceremonies.js'
import { passkeyRelyingParty, type PasskeyConfig } from './availability.js'

export interface PasskeySecondFactor {
  /**
   * WebAuthn request options for this user's passkeys (every one of them, passwordless or not), to
   * hand to the browser as JSON; undefined when the user has none, or passkeys are not offered at
   * this request's address (LOCAL_MFA off, no PUBLIC_URL in production, ...).
   */
  options: (request: FastifyRequest, userId: number) => Promise<PublicKeyCredentialRequestOptionsJSON | undefined>
  /**
   * Verify the browser's answer (the parsed JSON, unchecked: anything is refused cleanly) for this
   * user. On success the passkey's counter and last use are recorded, the metric counted and
   * `passkey-used` audited; on failure the reason (ceremonies.ts's PasskeyFailure): count it with
   * the sign-in throttle as a wrong code.
   */
  verify: (request: FastifyRequest, user: { id: number, username: string }, response: unknown) => Promise<PasskeyResult<Passkey>>
}

export function passkeySecondFactor (deps: { config: PasskeyConfig & { appName: string }, passkeys: PasskeyRepository, clock: Clock, metrics: Metrics }): PasskeySecondFactor {
  const ceremonies = new PasskeyCeremonies(deps.passkeys, deps.clock, deps.config.appName)
  return {
    options: async (request, userId) => {
      const rp = passkeyRelyingParty(deps.config, request)
      return rp === undefined ? undefined : await ceremonies.secondFactorOptions(rp, userId)
    },
    verify: async (request, user, response) => {
      const rp = passkeyRelyingParty(deps.config, request)
      if (rp === undefined) return { ok: false, reason: 'origin' }
      const result = await ceremonies.verifySecondFactor(rp, user.id, response)
      if (result.ok) {
        deps.metrics.passkey('second-factor')
        auditRequest(request, { audit: 'passkey-used', user: user.username, by: 'user', factor: 'second-factor', passkey: result.value.name })
      }
      return result
    }
  }
}
