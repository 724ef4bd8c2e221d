// The WebAuthn ceremonies with @simplewebauthn/server: registering a passkey, signing in with one
// instead of a password, and using one as the second factor after a password. Every challenge is
// stored (src/db/passkeys.ts) for one purpose and, when known, one user, for five minutes, and
// consumed once by an atomic DELETE inside the library's challenge check, so an answer is accepted
// at most once on any replica. Attestation is `none`: the gateway does not judge authenticators'
// makes, only that the same key signs each time.
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON
} from '@simplewebauthn/server'
import type { ChallengePurpose, Passkey, PasskeyRepository } from '../../db/passkeys.js'
import type { Clock } from '../../clock.js'
import type { RelyingParty } from './relying-party.js'
import { knownTransports, parseAuthenticationResponse, parseRegistrationResponse } from './input.js'

/** How long a challenge may be answered. */
export const CHALLENGE_TTL_MS = 5 * 60_000
/** How long the browser waits for the user (within the challenge's life). */
const BROWSER_TIMEOUT_MS = 2 * 60_000

/**
 * Why a ceremony's answer was refused: `malformed` (not a WebAuthn answer), `challenge` (unknown,
 * used, expired, or issued for another purpose or user), `origin` (made for another site),
 * `unknown-credential`, `wrong-user` (a passkey of another user than the one signing in),
 * `not-passwordless` (a second-factor-only passkey offered to sign in without a password),
 * `user-verification` (the authenticator did not verify the user where that is required),
 * `counter` (the signature counter did not move forward: a cloned authenticator, or a replay),
 * `duplicate` (that credential is registered already), `too-many` (MAX_PASSKEYS_PER_USER),
 * `invalid` (anything else the verification refused: a bad signature, the wrong RP ID, ...).
 */
export type PasskeyFailure = 'malformed' | 'challenge' | 'origin' | 'unknown-credential' | 'wrong-user' | 'not-passwordless' |
'user-verification' | 'counter' | 'duplicate' | 'too-many' | 'invalid'

export type PasskeyResult<T> = { ok: true, value: T } | { ok: false, reason: PasskeyFailure, passkey?: Passkey }

export interface RegistrationUser { id: number, username: string, fullName: string | null }

/** What the library's error says went wrong, for the reason (its messages are not an API: the default is `invalid`). */
export function failureOf (err: unknown, challengeRefused: boolean): PasskeyFailure {
  if (challengeRefused) return 'challenge'
  const message = err instanceof Error ? err.message : ''
  if (/origin/i.test(message)) return 'origin'
  if (/user verification/i.test(message)) return 'user-verification'
  if (/counter/i.test(message)) return 'counter'
  return 'invalid'
}

export class PasskeyCeremonies {
  constructor (private readonly store: PasskeyRepository, private readonly clock: Clock, private readonly rpName: string) {}

  private async challenge (challenge: string, purpose: ChallengePurpose, userId: number | null): Promise<void> {
    await this.store.createChallenge(challenge, purpose, userId, this.clock.now() + CHALLENGE_TTL_MS)
  }

  /**
   * Options for adding a passkey to this user's account. `passwordless`: the user wants it to sign
   * in without a password, so the authenticator must keep it (a discoverable credential) and
   * verify the user (PIN, biometrics); otherwise both are preferred, not demanded.
   */
  async registrationOptions (rp: RelyingParty, user: RegistrationUser, passwordless: boolean): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.store.listForUser(user.id)
    const options = await generateRegistrationOptions({
      rpName: this.rpName,
      rpID: rp.id,
      userName: user.username,
      userDisplayName: user.fullName ?? user.username,
      attestationType: 'none',
      timeout: BROWSER_TIMEOUT_MS,
      // The same authenticator twice for one account would be two rows for one key.
      excludeCredentials: existing.map((p) => ({ id: p.id, transports: knownTransports(p.transports) })),
      authenticatorSelection: passwordless
        ? { residentKey: 'required', requireResidentKey: true, userVerification: 'required' }
        : { residentKey: 'preferred', userVerification: 'preferred' }
    })
    await this.challenge(options.challenge, passwordless ? 'register-passwordless' : 'register', user.id)
    return options
  }

  /**
   * Verify the browser's answer to registrationOptions and store the passkey under `name`. Whether
   * it signs in without a password is what the options were issued for (their challenge says), not
   * what this request claims; such a passkey must have verified the user.
   */
  async register (rp: RelyingParty, userId: number, body: unknown, name: string): Promise<PasskeyResult<Passkey>> {
    const response = parseRegistrationResponse(body)
    if (response === undefined) return { ok: false, reason: 'malformed' }
    let purpose: ChallengePurpose | undefined
    let info
    try {
      const verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: async (challenge) => {
          purpose = await this.store.consumeChallenge(challenge, ['register', 'register-passwordless'], userId, this.clock.now())
          return purpose !== undefined
        },
        expectedOrigin: rp.origin,
        expectedRPID: rp.id,
        // Checked below, once the challenge has said which kind of passkey this is.
        requireUserVerification: false
      })
      if (!verified.verified) return { ok: false, reason: 'invalid' }
      info = verified.registrationInfo
    } catch (err) {
      return { ok: false, reason: failureOf(err, purpose === undefined) }
    }
    const passwordless = purpose === 'register-passwordless'
    if (passwordless && !info.userVerified) return { ok: false, reason: 'user-verification' }
    const passkey = {
      id: info.credential.id,
      userId,
      publicKey: info.credential.publicKey,
      counter: info.credential.counter,
      transports: response.response.transports ?? [],
      name,
      passwordless
    }
    const now = new Date(this.clock.now())
    if (!(await this.store.add(passkey, now))) {
      return { ok: false, reason: (await this.store.findById(passkey.id)) !== undefined ? 'duplicate' : 'too-many' }
    }
    return { ok: true, value: { ...passkey, createdAt: now, lastUsedAt: null } }
  }

  /**
   * Options for signing in without a password: no user yet (the browser offers the passkeys it
   * holds for this site), and the authenticator must verify the user, since nothing else does.
   */
  async signInOptions (rp: RelyingParty): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await generateAuthenticationOptions({ rpID: rp.id, userVerification: 'required', timeout: BROWSER_TIMEOUT_MS })
    await this.challenge(options.challenge, 'sign-in', null)
    return options
  }

  /**
   * Verify a sign-in without a password: the passkey must exist and be one its user chose for
   * that, the authenticator must have verified the user. `beforeVerifying` runs once the passkey
   * (so the user) is known and before the signature is checked: the throttle, which may refuse.
   */
  async verifySignIn (rp: RelyingParty, body: unknown, beforeVerifying: (passkey: Passkey) => Promise<PasskeyFailure | undefined> = async () => undefined): Promise<PasskeyResult<Passkey>> {
    const response = parseAuthenticationResponse(body)
    if (response === undefined) return { ok: false, reason: 'malformed' }
    const passkey = await this.store.findById(response.id)
    if (passkey === undefined) return { ok: false, reason: 'unknown-credential' }
    if (!passkey.passwordless) return { ok: false, reason: 'not-passwordless', passkey }
    const refused = await beforeVerifying(passkey)
    if (refused !== undefined) return { ok: false, reason: refused, passkey }
    return await this.verifyAssertion(rp, response, passkey, 'sign-in', null, true)
  }

  /**
   * Options for using one of this user's passkeys as the second factor after their password, or
   * undefined when they have none. User verification is preferred, not required: the password was
   * the first factor, the passkey's possession is the second.
   */
  async secondFactorOptions (rp: RelyingParty, userId: number): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
    const passkeys = await this.store.listForUser(userId)
    if (passkeys.length === 0) return undefined
    const options = await generateAuthenticationOptions({
      rpID: rp.id,
      userVerification: 'preferred',
      timeout: BROWSER_TIMEOUT_MS,
      allowCredentials: passkeys.map((p) => ({ id: p.id, transports: knownTransports(p.transports) }))
    })
    await this.challenge(options.challenge, 'second-factor', userId)
    return options
  }

  /** Verify the second factor of this user (any of their passkeys, passwordless or not): a passkey of another user is refused. */
  async verifySecondFactor (rp: RelyingParty, userId: number, body: unknown): Promise<PasskeyResult<Passkey>> {
    const response = parseAuthenticationResponse(body)
    if (response === undefined) return { ok: false, reason: 'malformed' }
    const passkey = await this.store.findById(response.id)
    if (passkey === undefined) return { ok: false, reason: 'unknown-credential' }
    if (passkey.userId !== userId) return { ok: false, reason: 'wrong-user' }
    return await this.verifyAssertion(rp, response, passkey, 'second-factor', userId, false)
  }

  private async verifyAssertion (rp: RelyingParty, response: AuthenticationResponseJSON, passkey: Passkey, purpose: ChallengePurpose, userId: number | null, requireUserVerification: boolean): Promise<PasskeyResult<Passkey>> {
    let challengeAccepted = false
    let newCounter: number
    try {
      const verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: async (challenge) => {
          challengeAccepted = (await this.store.consumeChallenge(challenge, [purpose], userId, this.clock.now())) !== undefined
          return challengeAccepted
        },
        expectedOrigin: rp.origin,
        expectedRPID: rp.id,
        credential: { id: passkey.id, publicKey: passkey.publicKey, counter: passkey.counter, transports: knownTransports(passkey.transports) },
        requireUserVerification
      })
      if (!verified.verified) return { ok: false, reason: 'invalid', passkey }
      newCounter = verified.authenticationInfo.newCounter
    } catch (err) {
      return { ok: false, reason: failureOf(err, !challengeAccepted), passkey }
    }
    const now = new Date(this.clock.now())
    // Another request moved the counter since it was read: one of the two is a copy.
    if (!(await this.store.recordUse(passkey.id, passkey.counter, newCounter, now))) return { ok: false, reason: 'counter', passkey }
    return { ok: true, value: { ...passkey, counter: newCounter, lastUsedAt: now } }
  }
}
