// The value parsers every part of the configuration shares; each reports a bad value through `fail`.
import type { Fail } from './environment.js'

export function parseIntIn (value: string, min: number, max: number): number | undefined {
  if (!/^\d+$/.test(value)) return undefined
  const n = Number(value)
  return n >= min && n <= max ? n : undefined
}

export function parseBool (name: string, value: string, fail: Fail): boolean | undefined {
  const v = value.toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(v)) return true
  if (['false', '0', 'no', 'off'].includes(v)) return false
  return fail(name, 'must be true or false')
}

export function oneOf<T extends string> (name: string, value: string, allowed: readonly T[], fail: Fail): T | undefined {
  const v = value.toLowerCase()
  return (allowed as readonly string[]).includes(v) ? v as T : fail(name, `must be one of ${allowed.join(', ')}`)
}

export function optionalUrl (name: string, value: string | undefined, protocols: string[], fail: Fail): URL | undefined {
  if (value === undefined) return undefined
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return fail(name, `is not a valid URL; use the form ${protocols[protocols.length - 1]}//host[:port]`)
  }
  if (!protocols.includes(url.protocol)) return fail(name, `must start with ${protocols.map((p) => p + '//').join(' or ')}`)
  if (url.username !== '' || url.password !== '') return fail(name, 'must not contain credentials')
  return url
}

export function list (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}
