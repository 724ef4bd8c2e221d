// Where to send the browser after login: only a same-origin relative path, anything else is "/".
// Pure and strict on purpose: a rejected legitimate URL costs a click, an accepted bad one an account.

const FALLBACK = '/'
const MAX_LENGTH = 2048
const BASE = 'http://authgate.invalid'
/**
 * Gateway routes are never a destination (a redirect back to /login after login would loop), but
 * for the account pages (/_authgate/account and below: passkeys), where signing in leads on purpose.
 */
const GATEWAY_PATHS = /^\/(login|logout)([/?#]|$)|^\/auth\/|^\/_authgate\/(?!account([/?#]|$))/

export function safeNextPath (input: unknown): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > MAX_LENGTH) return FALLBACK
  // Printable ASCII only: rejects whitespace, control characters (tab/CR/LF are dropped by URL parsers
  // and turn "/\t/evil" into "//evil"), and Unicode lookalikes of / and \ (browsers percent-encode
  // legitimate non-ASCII before it gets here).
  if (!/^[\x21-\x7e]+$/.test(input)) return FALLBACK
  if (!input.startsWith('/') || input.startsWith('//') || input.includes('\\')) return FALLBACK
  const [pathPart = ''] = input.split(/[?#]/, 1)
  // userinfo-looking paths ("/@evil.com", "/x:y@evil") are never needed by an application link
  if (pathPart.includes('@')) return FALLBACK
  // malformed escapes and encoded control characters anywhere; in the path also encoded separators,
  // dots and percent signs (double encoding), which a server may decode into another path
  if (/%(?![0-9a-f]{2})|%(0[0-9a-f]|1[0-9a-f]|7f)/i.test(input)) return FALLBACK
  if (/%(2f|5c|2e|25)/i.test(pathPart)) return FALLBACK
  let url: URL
  try {
    url = new URL(BASE + input)
  } catch {
    return FALLBACK
  }
  if (url.origin !== BASE) return FALLBACK
  const normalized = url.pathname + url.search + url.hash
  // Dot segments can collapse "/a/..//evil.com" into "//evil.com": never re-emit that.
  if (!normalized.startsWith('/') || normalized.startsWith('//') || GATEWAY_PATHS.test(normalized)) return FALLBACK
  return normalized
}
