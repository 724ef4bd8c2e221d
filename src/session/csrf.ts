// CSRF protection for the gateway's forms: a random value in an HttpOnly cookie, and in the form an
// HMAC of it (a "signed double-submit" token). A token from another browser or forged without the
// key does not match.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export function newCsrfSecret (): string {
  return randomBytes(32).toString('base64url')
}

export function csrfTokenFor (key: Buffer, secret: string): string {
  return createHmac('sha256', key).update('csrf:' + secret).digest('base64url')
}

export function isCsrfTokenValid (key: Buffer, secret: unknown, token: unknown): boolean {
  if (typeof secret !== 'string' || typeof token !== 'string' || !/^[\w-]{43}$/.test(secret)) return false
  const expected = Buffer.from(csrfTokenFor(key, secret))
  const given = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(expected, given)
}
