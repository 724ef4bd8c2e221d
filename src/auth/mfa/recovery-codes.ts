// Recovery codes: ten one-time codes shown once at enrolment, for the day the authenticator is lost.
// Stored as keyed hashes (HMAC-SHA-256 under a key derived from the second-factor data key, bound
// to the user), so the table alone gives nothing away and cannot be checked offline; compared in
// constant time. The data key (data-key.ts), not SECRET_KEY: a SECRET_KEY rotation leaves the
// hashes as they are.
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto'

export const RECOVERY_CODE_COUNT = 10
/** No 0/o, 1/l/i: codes are read off paper and typed by hand. 31 symbols, 10 of them: ~49.5 bits. */
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'
const GROUP = 5

/** `count` fresh codes, `xxxxx-xxxxx`, from node:crypto's uniform randomInt. */
export function newRecoveryCodes (count = RECOVERY_CODE_COUNT): string[] {
  const one = (): string => {
    let s = ''
    for (let i = 0; i < 2 * GROUP; i++) s += ALPHABET[randomInt(ALPHABET.length)]
    return `${s.slice(0, GROUP)}-${s.slice(GROUP)}`
  }
  const codes = new Set<string>()
  while (codes.size < count) codes.add(one())
  return [...codes]
}

/** What a user typed, as a recovery code in its canonical form (case, spaces and hyphens forgiven); else undefined. */
export function normaliseRecoveryCode (input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined
  const s = input.toLowerCase().replace(/[\s-]/g, '')
  if (s.length !== 2 * GROUP || [...s].some((c) => !ALPHABET.includes(c))) return undefined
  return `${s.slice(0, GROUP)}-${s.slice(GROUP)}`
}

export class RecoveryCodeHasher {
  /** `key`: 32 bytes derived from the data key for this purpose (data-key.ts, RECOVERY_CODE_PURPOSE). */
  constructor (private readonly key: Buffer) {}

  /** The stored form of a canonical code, bound to the user. */
  hash (userId: number, code: string): string {
    return hashWith(this.key, userId, code)
  }

  /** Which stored hash (unused codes of the user) this input is, compared in constant time; undefined: none. */
  match (userId: number, input: unknown, storedHashes: readonly string[]): string | undefined {
    const code = normaliseRecoveryCode(input)
    if (code === undefined) return undefined
    const candidate = Buffer.from(hashWith(this.key, userId, code))
    let found: string | undefined
    // Every stored hash is compared (no early exit): the time does not say which code, or whether one, matched.
    for (const stored of storedHashes) {
      const bytes = Buffer.from(stored)
      if (bytes.length === candidate.length && timingSafeEqual(bytes, candidate)) found = stored
    }
    return found
  }
}

function hashWith (key: Buffer, userId: number, code: string): string {
  return createHmac('sha256', key).update(`recovery-code:${userId}:${code}`).digest('base64url')
}
