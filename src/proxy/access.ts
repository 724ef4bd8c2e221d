// Access decisions for requests bound for the upstream. Pure functions over the one normalised URL
// that is both checked and proxied, so what is authorised is exactly what is forwarded.

const BASE = 'http://authgate.invalid'

export interface RequestTarget { path: string, search: string }

/**
 * Normalise an origin-form request target the way browsers and most servers read it: dot segments
 * resolved (also %2e forms), `\` read as `/`. Anything that is not origin-form is refused (undefined).
 */
export function normalizeRequestTarget (rawUrl: string): RequestTarget | undefined {
  if (!rawUrl.startsWith('/')) return undefined
  // Concatenation, not new URL(rawUrl, BASE): "//host/x" must stay a path, not become an authority.
  let url: URL
  try {
    url = new URL(BASE + rawUrl)
  } catch {
    return undefined
  }
  if (url.origin !== BASE) return undefined
  return { path: url.pathname, search: url.search }
}

/** Path and query of a URL that normalizeRequestTarget already produced (request.url after rewriteUrl). */
export function splitTarget (normalizedUrl: string): RequestTarget {
  const q = normalizedUrl.indexOf('?')
  return q < 0 ? { path: normalizedUrl, search: '' } : { path: normalizedUrl.slice(0, q), search: normalizedUrl.slice(q) }
}

// Encoded separators, dots, semicolons and percent signs can be decoded by the upstream into a
// different path than the one matched here; such paths never skip authentication.
const AMBIGUOUS_ENCODING = /%(2f|5c|2e|25|00|3b)/i
// A dot segment with a path parameter ("/static/..;x/admin"): URL parsers keep it as a name, but
// servers that strip ";params" per segment (Tomcat, Jetty, some Spring setups) read it as "..".
const DOT_SEGMENT_WITH_PARAMS = /\/\.{1,2};/

/** SKIP_AUTH_PATHS: `/static/` matches below it; `/healthz` matches itself and below `/healthz/`. */
export function isSkipAuthPath (path: string, prefixes: readonly string[]): boolean {
  if (prefixes.length === 0 || AMBIGUOUS_ENCODING.test(path) || DOT_SEGMENT_WITH_PARAMS.test(path)) return false
  for (const prefix of prefixes) {
    if (prefix.endsWith('/') ? path.startsWith(prefix) : (path === prefix || path.startsWith(prefix + '/'))) return true
  }
  return false
}

/** A top-level browser navigation: gets a redirect to the login page rather than a 401. */
export function isBrowserNavigation (method: string, accept: string | undefined): boolean {
  return (method === 'GET' || method === 'HEAD') && accept !== undefined && accept.includes('text/html')
}

export function loginLocation (target: RequestTarget): string {
  return '/login?next=' + encodeURIComponent(target.path + target.search)
}
