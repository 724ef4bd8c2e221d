// The token that binds the second sign-in step to the first: random, in the second-step form's
// hidden field, stored only as its SHA-256 (a high-entropy value needs no key or slow hash), valid
// MFA_TOKEN_TTL_MS and used once (src/db/second-factors.ts).
import { createHash, randomBytes } from 'node:crypto'

export const MFA_TOKEN_TTL_MS = 5 * 60 * 1000

const TOKEN = /^[\w-]{43}$/

export function newStepToken (): { token: string, hash: string } {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: stepTokenHash(token) }
}

export function stepTokenHash (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** The token's hash when the form field has the token's shape; undefined for anything else (never a lookup). */
export function stepTokenHashOf (input: unknown): string | undefined {
  return typeof input === 'string' && TOKEN.test(input) ? stepTokenHash(input) : undefined
}
