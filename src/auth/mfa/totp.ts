// TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) with @otplib (node:crypto underneath):
// new secrets, the otpauth:// URI authenticator apps read, and code checks that say which time step
// matched, so that the caller can accept each step once (src/db/second-factors.ts).
import { generateSecret } from '@otplib/core'
import { verify } from '@otplib/totp'
import { generateTOTP } from '@otplib/uri'
import { NodeCryptoPlugin } from '@otplib/plugin-crypto-node'
import { ScureBase32Plugin } from '@otplib/plugin-base32-scure'

const crypto = new NodeCryptoPlugin()
const base32 = new ScureBase32Plugin()

export const TOTP_PERIOD_SECONDS = 30
export const TOTP_DIGITS = 6
/** One step either side: a phone's clock a little off, or a code typed as it changed. */
export const TOTP_WINDOW_STEPS = 1

/** A fresh secret: 20 random bytes (160 bits, RFC 4226's recommendation), base32 without padding. */
export function newTotpSecret (): string {
  return generateSecret({ crypto, base32, length: 20 })
}

/** The otpauth:// URI for an authenticator app: the issuer (APP_NAME) and the account's name. */
export function otpauthUri (secret: string, issuer: string, username: string): string {
  return generateTOTP({ issuer, label: username, secret, algorithm: 'sha1', digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS })
}

/** What a user typed, as a TOTP code: six digits, spaces (as apps show "123 456") removed; else undefined. */
export function normaliseTotpCode (input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 32) return undefined
  const code = input.replace(/[\s-]/g, '')
  return /^\d{6}$/.test(code) ? code : undefined
}

/** The RFC 6238 time step of an instant (Unix seconds). */
export function timeStepOf (unixSeconds: number): number {
  return Math.floor(unixSeconds / TOTP_PERIOD_SECONDS)
}

/**
 * The time step whose code `input` is, within one step of `unixSeconds`, or undefined (not a code,
 * or not this secret's). A step at or before `lastStep` (the last one accepted) is refused here too:
 * the database has the final word (useTotpStep), this only spares it a write.
 */
export async function matchTotp (secret: string, input: unknown, unixSeconds: number, lastStep: number | null = null): Promise<number | undefined> {
  const token = normaliseTotpCode(input)
  if (token === undefined) return undefined
  const result = await verify({ secret, token, crypto, base32, epoch: unixSeconds, period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS, algorithm: 'sha1', epochTolerance: TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS })
  if (!result.valid) return undefined
  if (lastStep !== null && result.timeStep <= lastStep) return undefined
  return result.timeStep
}
