// Password hashes: scrypt from node:crypto, self-describing so parameters can be raised later.
// Format: scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

const scrypt = async (password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> =>
  await new Promise((resolve, reject) => {
    scryptCb(password, salt, keylen, options, (err, key) => { if (err !== null) reject(err); else resolve(key) })
  })

const DEFAULT = { logN: 15, r: 8, p: 1 }
const KEY_LENGTH = 32
const MAX_PASSWORD_LENGTH = 1024

interface ParsedHash { logN: number, r: number, p: number, salt: Buffer, hash: Buffer }

export function parsePasswordHash (stored: string): ParsedHash | undefined {
  const m = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([\w-]{16,})\$([\w-]{43})$/.exec(stored)
  if (m === null) return undefined
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])]
  // Bounded so a tampered row cannot make one login cost minutes or gigabytes.
  if (logN < 10 || logN > 20 || r < 1 || r > 16 || p < 1 || p > 4) return undefined
  return { logN, r, p, salt: Buffer.from(m[4]!, 'base64url'), hash: Buffer.from(m[5]!, 'base64url') }
}

function options (logN: number, r: number, p: number): ScryptOptions {
  const N = 2 ** logN
  return { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 }
}

export async function hashPassword (password: string): Promise<string> {
  const salt = randomBytes(16)
  const { logN, r, p } = DEFAULT
  const hash = await scrypt(password.normalize('NFC'), salt, KEY_LENGTH, options(logN, r, p))
  return `scrypt$${logN}$${r}$${p}$${salt.toString('base64url')}$${hash.toString('base64url')}`
}

// Verified against when the user is unknown or has no password, so every failure costs one scrypt.
let dummyHash: Promise<string> | undefined

/** Constant-time check; `stored` undefined (unknown user) still spends the same work. */
export async function verifyPassword (password: string, stored: string | null | undefined): Promise<boolean> {
  dummyHash ??= hashPassword('authgate-timing-equaliser')
  const real = parsePasswordHash(stored ?? '')
  const parsed = real ?? parsePasswordHash(await dummyHash)!
  const candidate = await scrypt(password.slice(0, MAX_PASSWORD_LENGTH).normalize('NFC'), parsed.salt, KEY_LENGTH, options(parsed.logN, parsed.r, parsed.p))
  return timingSafeEqual(candidate, parsed.hash) && real !== undefined
}

export function checkNewPassword (password: string): string | undefined {
  if (password.length < 8) return 'must be at least 8 characters'
  if (password.length > MAX_PASSWORD_LENGTH) return `must be at most ${MAX_PASSWORD_LENGTH} characters`
  return undefined
}
