// Where the gateway listens, the public origin it serves, and the one upstream behind it.
import type { Reader } from './environment.js'
import { optionalUrl, parseIntIn } from './parse.js'

export interface ListenerConfig {
  host: string
  port: number
  publicUrl: URL | undefined
  /** undefined: serve the embedded demo upstream (development only). */
  upstreamUrl: URL | undefined
}

export const DEFAULT_PORT = 8080

export function parseListener (r: Reader, production: boolean): Partial<ListenerConfig> {
  const { get, fail } = r
  const port = parseIntIn(get('PORT') ?? String(DEFAULT_PORT), 0, 65535) ?? fail('PORT', 'must be an integer from 0 to 65535')
  // Development listens on loopback only: a laptop on a café network must not offer name-only sign-in
  // to everyone around. Production (and the container image, which sets HOST) listens everywhere.
  const host = get('HOST') ?? (production ? '0.0.0.0' : '127.0.0.1')

  const publicUrl = optionalUrl('PUBLIC_URL', get('PUBLIC_URL'), ['http:', 'https:'], fail)
  if (publicUrl !== undefined && (publicUrl.pathname !== '/' || publicUrl.search !== '' || publicUrl.hash !== '')) {
    fail('PUBLIC_URL', 'must be an origin only, e.g. https://tt.example.com (authgate serves the whole host)')
  }
  const upstreamUrl = optionalUrl('UPSTREAM_URL', get('UPSTREAM_URL'), ['http:', 'https:'], fail)
  if (production && upstreamUrl === undefined) {
    fail('UPSTREAM_URL', 'is required when NODE_ENV=production (the demo upstream is for development only); e.g. http://127.0.0.1:5000')
  }
  return { host, port, publicUrl, upstreamUrl }
}
