// LOCAL_MFA=required: whether a session may reach the upstream (HTTP, WebSocket, forward-auth) or is
// held on the account page until its user enrols a second factor. Pure, for every path to share.
import type { LocalMfa } from '../../config/sign-in.js'
import type { SessionPayload } from '../../session/session.js'

export const ACCOUNT_PATH = '/_authgate/account'

/**
 * `enrol`: held. A session started as "enrolment pending" always is; with `required`, so is any
 * local session that did not pass a second factor (one from before LOCAL_MFA=required was set, say).
 * SSO sessions never are: their IdP handles its own factors.
 */
export function secondFactorHold (localMfa: LocalMfa, session: Pick<SessionPayload, 'm' | 'f' | 'pe'>): 'enrol' | undefined {
  if (session.pe === true) return 'enrol'
  if (localMfa === 'required' && session.m === 'local' && session.f === undefined) return 'enrol'
  return undefined
}
