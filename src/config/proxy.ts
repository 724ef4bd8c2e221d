// What the proxy believes and allows: forwarded client addresses, the paths that skip
// authentication, how much of the shared upstream pool one client may hold, and how long the
// upstream may take to start its answer.
import { isIP } from 'node:net'
import type { ClientLimits } from '../proxy/client-limits.js'
import type { Fail, Reader } from './environment.js'
import { list, parseIntIn } from './parse.js'

/**
 * Which client-supplied X-Forwarded-* we believe: none, every peer's, or those sent by a peer at one
 * of these addresses/CIDRs. No hop count: it cannot check who the immediate peer is, so a client that
 * connects directly picks its own address (Fastify 5.12.1 stopped honouring it for that reason).
 */
export type TrustProxy = boolean | string[]

export interface ProxyConfig {
  trustProxy: TrustProxy
  skipAuthPaths: string[]
  /** UPSTREAM_POOL_SIZE: connections to the upstream, shared by every client. */
  upstreamPoolSize: number
  /** UPSTREAM_HEADER_TIMEOUT: how long the upstream may take to send its response headers (then 504); bodies are never timed. */
  upstreamHeaderTimeoutMs: number
  /** How slow and how greedy one client may be toward the shared upstream pool. */
  clientLimits: ClientLimits
}

export function parseProxy (r: Reader): Partial<ProxyConfig> {
  const { get, getList, fail } = r
  const trustProxy = parseTrustProxy(get('TRUST_PROXY') ?? 'false', fail)
  const skipAuthPaths = parseSkipAuthPaths(getList('SKIP_AUTH_PATHS'), fail)
  const { upstreamPoolSize, clientLimits } = parseClientLimits(get, fail)
  const headerTimeout = parseIntIn(get('UPSTREAM_HEADER_TIMEOUT') ?? String(UPSTREAM_HEADER_TIMEOUT_DEFAULT), 1, 3600) ??
    fail('UPSTREAM_HEADER_TIMEOUT', 'must be a whole number of seconds from 1 to 3600 (it bounds the wait for the response headers only: streamed bodies and long-polls that answer at once are never cut)')
  return { trustProxy, skipAuthPaths: skipAuthPaths ?? [], upstreamPoolSize, clientLimits, upstreamHeaderTimeoutMs: headerTimeout !== undefined ? headerTimeout * 1000 : undefined }
}

/**
 * Seconds the upstream may take to send its response headers. A hung application holds a pool
 * connection and its user's browser that long; 60 s is what nginx (proxy_read_timeout) and common
 * load balancers already allow, so a long-poll that works behind them works here too.
 */
export const UPSTREAM_HEADER_TIMEOUT_DEFAULT = 60

function parseTrustProxy (value: string, fail: Fail): TrustProxy | undefined {
  const v = value.toLowerCase()
  if (v === 'true' || v === 'false') return v === 'true'
  if (/^\d+$/.test(v)) {
    return fail('TRUST_PROXY', `is a hop count (${v}), which is refused: it cannot check who the immediate peer is, so a client that reaches ` +
      'the gateway directly would choose its own address with X-Forwarded-For. List the addresses/CIDRs of your proxies instead, ' +
      'e.g. TRUST_PROXY=127.0.0.1 for a proxy on the same host or TRUST_PROXY=10.0.0.0/8 for a private network')
  }
  const cidrs = list(value)
  // Only commas and spaces: no proxies, the same as false.
  if (cidrs.length === 0) return false
  if (cidrs.every(isAddressOrCidr)) return cidrs
  return fail('TRUST_PROXY', 'must be false, true, or comma-separated addresses/CIDRs of your proxies, such as 127.0.0.1 or 10.0.0.0/8,::1')
}

/** What proxy-addr accepts (anything else would stop startup later with a bare TypeError). */
function isAddressOrCidr (value: string): boolean {
  const [address = '', prefix, ...rest] = value.split('/')
  const version = isIP(address)
  if (version === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  if (!/^\d{1,3}$/.test(prefix)) return false
  return Number(prefix) <= (version === 4 ? 32 : 128)
}

/** Defaults a slow mobile upload passes with room to spare (20 KB/s is twenty times the minimum rate). */
export const CLIENT_LIMIT_DEFAULTS = { headerTimeout: 30, bodyIdleTimeout: 30, bodyMinRate: 1024, upstreamPoolSize: 128 }

function parseClientLimits (get: (name: string) => string | undefined, fail: Fail): { upstreamPoolSize: number | undefined, clientLimits: ClientLimits | undefined } {
  const seconds = (name: string, fallback: number): number | undefined =>
    parseIntIn(get(name) ?? String(fallback), 1, 3600) ?? fail(name, 'must be a whole number of seconds from 1 to 3600')
  const headerTimeout = seconds('CLIENT_HEADER_TIMEOUT', CLIENT_LIMIT_DEFAULTS.headerTimeout)
  const bodyIdleTimeout = seconds('CLIENT_BODY_IDLE_TIMEOUT', CLIENT_LIMIT_DEFAULTS.bodyIdleTimeout)
  const bodyMinRate = parseIntIn(get('CLIENT_BODY_MIN_RATE') ?? String(CLIENT_LIMIT_DEFAULTS.bodyMinRate), 0, 1_000_000_000) ??
    fail('CLIENT_BODY_MIN_RATE', 'must be a whole number of bytes per second (0 turns the rate check off; the idle limit still applies)')
  const upstreamPoolSize = parseIntIn(get('UPSTREAM_POOL_SIZE') ?? String(CLIENT_LIMIT_DEFAULTS.upstreamPoolSize), 2, 65535) ??
    fail('UPSTREAM_POOL_SIZE', 'must be a whole number of connections from 2 to 65535')
  // By default one address may hold a quarter of the pool: never all of it, enough for a busy browser.
  const fallbackMax = upstreamPoolSize !== undefined ? Math.max(1, Math.floor(upstreamPoolSize / 4)) : 1
  const maxRaw = get('CLIENT_MAX_CONCURRENT_REQUESTS')
  let maxConcurrentRequests = parseIntIn(maxRaw ?? String(fallbackMax), 1, 65534) ??
    fail('CLIENT_MAX_CONCURRENT_REQUESTS', 'must be a whole number of requests, at least 1')
  if (maxConcurrentRequests !== undefined && upstreamPoolSize !== undefined && maxConcurrentRequests >= upstreamPoolSize) {
    maxConcurrentRequests = fail('CLIENT_MAX_CONCURRENT_REQUESTS', `must be less than UPSTREAM_POOL_SIZE (${upstreamPoolSize}), or one client address could hold every upstream connection; raise UPSTREAM_POOL_SIZE too if you need more`)
  }
  if (headerTimeout === undefined || bodyIdleTimeout === undefined || bodyMinRate === undefined || maxConcurrentRequests === undefined) return { upstreamPoolSize, clientLimits: undefined }
  return {
    upstreamPoolSize,
    clientLimits: { headerTimeoutMs: headerTimeout * 1000, bodyIdleTimeoutMs: bodyIdleTimeout * 1000, bodyMinBytesPerSecond: bodyMinRate, maxConcurrentRequests }
  }
}

function parseSkipAuthPaths (paths: string[], fail: Fail): string[] | undefined {
  for (const p of paths) {
    // Prefixes are compared with the normalised request path, so they must be normalised themselves.
    if (!p.startsWith('/') || p.includes('//') || /(^|\/)\.\.?(\/|$)/.test(p) || /[%\\?#]/.test(p)) {
      return fail('SKIP_AUTH_PATHS', `"${p}" must be a plain path prefix starting with /, without . or .. segments, %, \\, ? or #`)
    }
    if (p === '/') return fail('SKIP_AUTH_PATHS', '"/" would disable authentication for everything; list narrower prefixes')
  }
  return paths
}
