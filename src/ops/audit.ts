// The audit trail: one structured log line for each action that changes who can get in, or tried
// to: sign-ins (and failed ones), sign-outs, accounts created, admin granted or removed, accounts
// disabled or enabled, sessions revoked or ended by the IdP, passwords set. The gateway writes them through the
// request's logger (with its reqId and the client's address), the CLI through its own, on stderr.
//
// They are written at `info` whatever LOG_LEVEL says, `silent` excepted: raising the level to cut
// the access lines must not cut the audit trail, and `silent` is an explicit "nothing at all". Find
// them by their `audit` field (the action); docs/DEPLOY.md#audit-log has the schema.
import { userInfo } from 'node:os'
import { pino, type Logger } from 'pino'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { loggerOptions } from '../logger.js'

export type AuditAction =
  | 'sign-in' | 'sign-in-failed' | 'sign-out' | 'sso-linked'
  | 'user-created' | 'admin-granted' | 'admin-revoked' | 'user-disabled' | 'user-enabled'
  | 'sessions-revoked' | 'sessions-ended' | 'password-set' | 'session-ended'
  | 'passkey-added' | 'passkey-removed' | 'passkey-used' | 'reauth-failed'
  | 'second-factor-enrolled' | 'second-factor-removed' | 'recovery-code-used' | 'recovery-codes-regenerated' | 'second-factors-reset'

/**
 * Who made the change: the user themself (signing in or out, or created by signing in for the first
 * time), the operator's command line, or the rule that granted or removed admin at a sign-in:
 * ADMIN_USERNAMES, OIDC_ADMIN_GROUP, OIDC_ADMIN_EMAILS, or the IdP mapping no longer granting it;
 * `oidc-revalidation`: a background re-validation of an SSO session with the IdP (no request);
 * or the IdP ending its session (back-channel or front-channel logout).
 */
export type AuditActor = 'user' | 'cli' | 'admin-usernames' | 'oidc-group' | 'oidc-email' | 'oidc-mapping' | 'oidc-revalidation' | 'idp-backchannel' | 'idp-frontchannel'

export interface AuditEvent {
  audit: AuditAction
  /** The account concerned; for a failed sign-in the name tried, when it was a valid username. */
  user: string | undefined
  by: AuditActor
  /** Sign-ins and sign-outs: local or oidc. */
  method?: 'local' | 'oidc'
  /** SSO with OIDC_PROVIDERS: the provider's id. */
  provider?: string
  /** Why a sign-in (or reauth-failed: the password asked again) was refused, or why sessions were revoked. */
  reason?: string
  admin?: boolean
  /** sessions-ended: how many of the user's sessions ended. */
  sessions?: number
  /** Second factors: which (totp, recovery, passkey) for sign-ins, enrolments and removals (reauth-failed: the one being added); passkey-used: `sign-in` (instead of the password) or `second-factor`. */
  factor?: string
  /** passkey-*: the passkey's name, as its user gave it, and whether it signs in without a password. */
  passkey?: string
  passwordless?: boolean
}

/** An action taken through a request: the client's address and (through request.log) the request id go with it. */
export function auditRequest (request: FastifyRequest, event: AuditEvent): void {
  write(request.log, { ...event, ip: request.ip })
}

/** An action the gateway took by itself, outside any request (an SSO session's re-validation). */
export function auditBackground (log: FastifyBaseLogger, event: AuditEvent): void {
  write(log, { ...event })
}

/** The CLI's audit trail: events on stderr (stdout is the command's output), with the OS user who ran it. */
export class CliAudit {
  private readonly osUser = currentOsUser()

  constructor (private readonly log: FastifyBaseLogger | Logger) {}

  /** JSON lines on stderr, written before the process exits; LOG_LEVEL=silent turns them off. */
  static toStderr (level: string | undefined): CliAudit {
    // The server refuses an unknown LOG_LEVEL at startup; the CLI still records (at info) rather than fail.
    const known = level === 'silent' || (level !== undefined && level in pino.levels.values)
    return new CliAudit(pino(loggerOptions(known ? level : 'info'), pino.destination({ fd: 2, sync: true })))
  }

  record (event: Omit<AuditEvent, 'by'>): void {
    write(this.log, { ...event, by: 'cli', osUser: this.osUser })
  }
}

function write (log: FastifyBaseLogger | Logger, event: AuditEvent & Record<string, unknown>): void {
  if (log.level === 'silent') return
  log.child({}, { level: 'info' }).info(event, `audit: ${event.audit}${event.user !== undefined ? ' ' + event.user : ''}`)
}

/** A container may run as a uid without a name: then the uid. */
function currentOsUser (): string {
  try {
    return userInfo().username
  } catch {
    return String(process.getuid?.() ?? 'unknown')
  }
}
