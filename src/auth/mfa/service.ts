// The second factors as the routes use them: TOTP enrolment and checks, recovery codes, the
// second-step tokens. Secrets are sealed and codes hashed here, with keys derived from the
// deployment's second-factor data key (data-key.ts; never directly under SECRET_KEY, so a SECRET_KEY
// rotation leaves them working); single use is the repository's (an UPDATE judged by the rows it changed).
import type { Clock } from '../../clock.js'
import type { SecondFactorRepository, SecondFactorSummary } from '../../db/second-factors.js'
import { SealedBox } from '../../session/sealed-box.js'
import type { SecondFactorKind } from '../../session/session.js'
import { matchTotp, newTotpSecret, otpauthUri } from './totp.js'
import { newRecoveryCodes, RecoveryCodeHasher } from './recovery-codes.js'
import { MFA_TOKEN_TTL_MS, newStepToken, stepTokenHashOf } from './step-token.js'
import { deriveFromDataKey, RECOVERY_CODE_PURPOSE, TOTP_SECRET_PURPOSE } from './data-key.js'

/** A code checked: the factor it passed, or why not (`replayed`: a TOTP code of a step already used). */
export type CodeCheck = { ok: true, factor: Extract<SecondFactorKind, 'totp' | 'recovery'> } | { ok: false, reason: 'wrong-code' | 'replayed' | 'no-factor' }

/** How often (at most) one process deletes expired second-step tokens. */
const SWEEP_INTERVAL_MS = 60_000

export class SecondFactors {
  private lastSweep = 0
  private readonly keyed: { box: SealedBox, hasher: RecoveryCodeHasher } | undefined

  /**
   * `dataKey`: the deployment's second-factor data key (loadDataKey, at start); undefined with
   * LOCAL_MFA=off, where no route reaches what needs it.
   */
  constructor (readonly repository: SecondFactorRepository, dataKey: Buffer | undefined, private readonly clock: Clock) {
    this.keyed = dataKey === undefined
      ? undefined
      : { box: SealedBox.withKeys([deriveFromDataKey(dataKey, TOTP_SECRET_PURPOSE)], 'totp secret'), hasher: new RecoveryCodeHasher(deriveFromDataKey(dataKey, RECOVERY_CODE_PURPOSE)) }
  }

  private get box (): SealedBox {
    // Every route that seals or checks is behind LOCAL_MFA (404 when off): reaching here without a key is a bug.
    if (this.keyed === undefined) throw new Error('second factors used without their data key (LOCAL_MFA=off)')
    return this.keyed.box
  }

  private get hasher (): RecoveryCodeHasher {
    if (this.keyed === undefined) throw new Error('second factors used without their data key (LOCAL_MFA=off)')
    return this.keyed.hasher
  }

  async summaryOf (userId: number): Promise<SecondFactorSummary> {
    return await this.repository.summaryOf(userId)
  }

  async hasConfirmedFactor (userId: number): Promise<boolean> {
    return await this.repository.hasConfirmedFactor(userId)
  }

  /**
   * A new pending TOTP enrolment (replacing a pending one): the secret and its otpauth URI, to show
   * once. undefined: the user has a confirmed authenticator already (remove it first).
   */
  async beginTotp (userId: number, username: string, issuer: string): Promise<{ secret: string, uri: string } | undefined> {
    const secret = newTotpSecret()
    if (!(await this.repository.beginTotp(userId, this.box.seal(String(userId), secret), new Date(this.clock.now())))) return undefined
    return { secret, uri: otpauthUri(secret, issuer, username) }
  }

  /** The pending enrolment's secret and URI again (a wrong first code shows the same QR code). */
  async pendingTotp (userId: number, username: string, issuer: string): Promise<{ secret: string, uri: string } | undefined> {
    const record = await this.repository.totpOf(userId)
    if (record === undefined || record.confirmedAt !== null) return undefined
    const secret = this.box.open(String(userId), record.sealedSecret)
    return secret === undefined ? undefined : { secret, uri: otpauthUri(secret, issuer, username) }
  }

  /**
   * Confirm a pending enrolment with a code from the new authenticator: the recovery codes (to show
   * once), or why not.
   */
  async confirmTotp (userId: number, code: unknown): Promise<{ ok: true, recoveryCodes: string[] } | { ok: false, reason: 'wrong-code' | 'no-pending' }> {
    const record = await this.repository.totpOf(userId)
    if (record === undefined || record.confirmedAt !== null) return { ok: false, reason: 'no-pending' }
    const secret = this.box.open(String(userId), record.sealedSecret)
    if (secret === undefined) return { ok: false, reason: 'no-pending' }
    const step = await matchTotp(secret, code, this.clock.now() / 1000)
    if (step === undefined) return { ok: false, reason: 'wrong-code' }
    const recoveryCodes = newRecoveryCodes()
    const confirmed = await this.repository.confirmTotp(userId, step, recoveryCodes.map((c) => this.hasher.hash(userId, c)), new Date(this.clock.now()))
    return confirmed ? { ok: true, recoveryCodes } : { ok: false, reason: 'no-pending' }
  }

  /** A TOTP code of the confirmed authenticator, used once (its step is recorded). */
  async checkTotp (userId: number, code: unknown): Promise<CodeCheck> {
    const record = await this.repository.totpOf(userId)
    if (record === undefined || record.confirmedAt === null) return { ok: false, reason: 'no-factor' }
    const secret = this.box.open(String(userId), record.sealedSecret)
    // A secret the data key does not open (an altered row): no code can match.
    if (secret === undefined) return { ok: false, reason: 'wrong-code' }
    const now = this.clock.now() / 1000
    const step = await matchTotp(secret, code, now)
    if (step === undefined) return { ok: false, reason: 'wrong-code' }
    if (record.lastStep !== null && step <= record.lastStep) return { ok: false, reason: 'replayed' }
    return (await this.repository.useTotpStep(userId, step)) ? { ok: true, factor: 'totp' } : { ok: false, reason: 'replayed' }
  }

  /** The second step's field: a TOTP code or a recovery code, whichever it is. */
  async checkCode (userId: number, code: unknown): Promise<CodeCheck> {
    const totp = await this.checkTotp(userId, code)
    if (totp.ok || totp.reason !== 'wrong-code') return totp
    const stored = await this.repository.unusedRecoveryCodeHashes(userId)
    const hash = this.hasher.match(userId, code, stored)
    if (hash === undefined) return { ok: false, reason: 'wrong-code' }
    return (await this.repository.useRecoveryCode(userId, hash, new Date(this.clock.now()))) ? { ok: true, factor: 'recovery' } : { ok: false, reason: 'wrong-code' }
  }

  /** Ten new recovery codes replace the old ones (to show once). */
  async regenerateRecoveryCodes (userId: number): Promise<string[]> {
    const codes = newRecoveryCodes()
    await this.repository.replaceRecoveryCodes(userId, codes.map((c) => this.hasher.hash(userId, c)), new Date(this.clock.now()))
    return codes
  }

  async removeTotp (userId: number): Promise<void> {
    await this.repository.removeTotp(userId)
  }

  /** A second-step token for this user and `next`: the value for the form's hidden field. */
  async newStepToken (userId: number, next: string): Promise<string> {
    const now = this.clock.now()
    // The table stays bounded: expired tokens go as new ones come (as the throttle's counters do).
    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) {
      this.lastSweep = now
      await this.repository.deleteExpiredMfaTokens(now)
    }
    const { token, hash } = newStepToken()
    await this.repository.createMfaToken(hash, userId, next, now + MFA_TOKEN_TTL_MS)
    return token
  }

  /** The step a form's token stands for, while usable; undefined: forged, expired or used. */
  async findStep (token: unknown): Promise<{ userId: number, next: string } | undefined> {
    const hash = stepTokenHashOf(token)
    return hash === undefined ? undefined : await this.repository.findMfaToken(hash, this.clock.now())
  }

  /** Use the token (once): false when another request used it first, or it expired meanwhile. */
  async useStep (token: unknown): Promise<boolean> {
    const hash = stepTokenHashOf(token)
    return hash === undefined ? false : await this.repository.useMfaToken(hash, this.clock.now())
  }
}
