// Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): after a successful
// sign-in the browser gets a cookie naming that username, so that its later attempts at that username
// are throttled on a budget of their own (throttle.ts) and an attacker cannot lock the owner out.
// Guards against forged or altered cookies (HMAC with a key derived from SECRET_KEY, compared in
// constant time), expired ones, and a cookie for one account helping with another.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** Seconds a device cookie is valid; every sign-in issues a fresh one. */
export const DEVICE_COOKIE_MAX_AGE = 90 * 24 * 3600

const MAX_COOKIE_LENGTH = 512

function mac (key: Buffer, body: string): string {
  return createHmac('sha256', key).update('device-v1.' + body).digest('base64url')
}

/** `<username, base64url>.<random id>.<expiry, Unix seconds>.<HMAC>` */
export function newDeviceCookie (key: Buffer, username: string, now = Date.now() / 1000): string {
  const body = [Buffer.from(username, 'utf8').toString('base64url'), randomBytes(16).toString('base64url'), String(Math.floor(now) + DEVICE_COOKIE_MAX_AGE)].join('.')
  return `${body}.${mac(key, body)}`
}

/**
 * The device id of `value` when it is an unexpired device cookie for `username` made with one of
 * `keys` (the current SECRET_KEY's, then older ones during rotation), else undefined.
 */
export function deviceIdFor (keys: Buffer[], value: unknown, username: string, now = Date.now() / 1000): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_COOKIE_LENGTH) return undefined
  const parts = value.split('.')
  if (parts.length !== 4) return undefined
  const [name, id, expires, tag] = parts as [string, string, string, string]
  const body = `${name}.${id}.${expires}`
  const given = Buffer.from(tag)
  const signed = keys.some((key) => {
    const expected = Buffer.from(mac(key, body))
    return expected.length === given.length && timingSafeEqual(expected, given)
  })
  if (!signed || !/^\d{1,12}$/.test(expires) || Number(expires) <= now) return undefined
  return Buffer.from(name, 'base64url').toString('utf8') === username ? id : undefined
}
