// The headers that cross the gateway, in both directions. Pure: given the client's headers and what
// the gateway knows, the exact header set the upstream receives (and the reverse for responses).
import { isGatewayHeader, type HeaderMap, type IdentityHeaders } from '../identity/headers.js'
import { isGatewayCookie } from '../session/index.js'

// Hop-by-hop headers (RFC 9110 §7.6.1) and proxy-only headers: never copied from one side to the other.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'])
// Not copied to the upstream: hop-by-hop; the forwarding headers, replaced with what the gateway
// itself knows (a client's own values are never passed on); and Expect: 100-continue, answered by
// the gateway's own server before the request is proxied (undici refuses to send it: every such
// request was a 502).
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip', 'expect'])

/** Names listed in Connection are hop-by-hop for this message too (none: undefined). */
function connectionListed (headers: HeaderMap): string[] | undefined {
  const value = headers.connection
  return typeof value === 'string' ? value.toLowerCase().split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined
}

/** Whether a header of this name may cross the gateway, given the set it may never be in. */
function passes (name: string, never: ReadonlySet<string>, listed: string[] | undefined): boolean {
  const lower = name.toLowerCase()
  return !never.has(lower) && (listed === undefined || !listed.includes(lower))
}

const cookieName = (pair: string): string => {
  const eq = pair.indexOf('=')
  return (eq < 0 ? pair : pair.slice(0, eq)).trim()
}

/** The Cookie header without the gateway's own cookies (undefined when nothing is left). */
export function removeGatewayCookies (cookie: string | string[] | undefined): string | undefined {
  if (cookie === undefined) return undefined
  let kept = ''
  for (const part of (Array.isArray(cookie) ? cookie.join('; ') : cookie).split(';')) {
    const pair = part.trim()
    if (pair === '' || isGatewayCookie(cookieName(pair))) continue
    kept = kept === '' ? pair : `${kept}; ${pair}`
  }
  return kept === '' ? undefined : kept
}

export interface ForwardContext {
  /** Signed identity headers, or undefined for SKIP_AUTH_PATHS requests. */
  identity: IdentityHeaders | Record<string, string> | undefined
  /** Client chain, nearest last, already filtered by TRUST_PROXY. */
  forwardedFor: string[]
  proto: string
  host: string
  /** This request's id (net/request-id.ts): the upstream gets it as X-Request-Id, whatever the client sent. */
  requestId?: string
}

export function upstreamRequestHeaders (incoming: HeaderMap, ctx: ForwardContext): HeaderMap {
  // One pass, one copy: without hop-by-hop and forwarding headers, any spelling of the identity
  // headers, and the Cookie header, which comes back without the gateway's cookies.
  const listed = connectionListed(incoming)
  const headers: HeaderMap = {}
  for (const name of Object.keys(incoming)) {
    if (name === 'cookie' || !passes(name, NOT_FORWARDED, listed) || isGatewayHeader(name)) continue
    headers[name] = incoming[name]
  }
  const cookie = removeGatewayCookies(incoming.cookie)
  if (cookie !== undefined) headers.cookie = cookie
  headers['x-forwarded-for'] = ctx.forwardedFor.join(', ')
  headers['x-forwarded-proto'] = ctx.proto
  headers['x-forwarded-host'] = ctx.host
  if (ctx.requestId !== undefined) headers['x-request-id'] = ctx.requestId
  if (ctx.identity !== undefined) Object.assign(headers, ctx.identity)
  return headers
}

// The WebSocket client that connects to the upstream writes its own handshake (Host, key, version,
// extensions; the subprotocol is passed separately): the client's must not be copied over it.
const WEBSOCKET_HANDSHAKE = /^(host|sec-websocket-.*|content-length)$/

/** Headers for the upstream side of a proxied WebSocket: as for HTTP, minus the handshake itself. */
export function upstreamWebSocketHeaders (incoming: HeaderMap, ctx: ForwardContext): HeaderMap {
  const headers = upstreamRequestHeaders(incoming, ctx)
  for (const name of Object.keys(headers)) {
    if (WEBSOCKET_HANDSHAKE.test(name)) delete headers[name]
  }
  return headers
}

/**
 * Response headers from the upstream: without its hop-by-hop headers (reply-from copies them as they
 * are for HTTP/1 clients) and without any attempt to set or clear the gateway's cookies. X-Request-Id
 * is the gateway's own, the one in its logs (the upstream received the same).
 */
export function clientResponseHeaders (headers: HeaderMap, requestId?: string): HeaderMap {
  const listed = connectionListed(headers)
  const out: HeaderMap = {}
  for (const name of Object.keys(headers)) {
    if (passes(name, HOP_BY_HOP, listed)) out[name] = headers[name]
  }
  if (requestId !== undefined) out['x-request-id'] = requestId
  const setCookie = headers['set-cookie']
  if (setCookie !== undefined) {
    const kept = (Array.isArray(setCookie) ? setCookie : [setCookie]).filter((c) => !isGatewayCookie(cookieName(c)))
    if (kept.length === 0) delete out['set-cookie']
    else out['set-cookie'] = kept
  }
  return out
}
