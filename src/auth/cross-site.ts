// Whether a request may have been sent by a page of another site: guards the gateway's routes that
// act on a GET or on a form without a token (logout) against cross-site request forgery. A page
// elsewhere can make the browser send a GET (a link, an image, a navigation) or a form POST to the
// gateway, with its SameSite=Lax cookie on top-level navigations; what it cannot do is choose the
// Sec-Fetch-Site, Origin and Referer headers, which the browser fills in itself. Anything the
// headers leave in doubt is 'unknown', and each route decides what doubt allows.
//
// The order is that of Go's net/http CrossOriginProtection:
// 1. Sec-Fetch-Site, which every current browser sends to https and localhost addresses, decides
//    alone: it covers the whole redirect chain and needs no knowledge of the gateway's own address,
//    so a wrong PUBLIC_URL or proxy setting cannot make the application's own link look foreign.
//    `same-site` (a sibling subdomain: another application, a user-content host) counts as
//    cross-site: the gateway's cookie belongs to its own origin (`__Host-`), and a neighbour under
//    the same registrable domain is no more trusted than any other site. `none` (typed, bookmarked)
//    names no site, and the other headers are asked.
// 2. Origin (POSTs, and every request in browsers without Sec-Fetch-Site): the gateway's own origin
//    or another. `null` is an opaque origin (a sandboxed frame, a POST from a no-referrer page such
//    as the gateway's own) and says nothing either way.
// 3. Referer: another origin's is cross-site. The gateway's own is not taken as proof: a Referer may
//    be trimmed or dropped by policy, and proof is what Sec-Fetch-Site and Origin exist for.
// Anything unreadable (an unknown Sec-Fetch-Site value, a duplicated header, an unparseable URL)
// is cross-site: fail closed.

export type RequestSite = 'same-origin' | 'cross-site' | 'unknown'

/** The request headers this decision reads (Node's IncomingHttpHeaders fits). */
export type SiteHeaders = Record<string, string | string[] | undefined>

export function requestSite (headers: SiteHeaders, ownOrigin: string | undefined): RequestSite {
  const fetchSite = headers['sec-fetch-site']
  if (fetchSite !== undefined && fetchSite !== 'none') return fetchSite === 'same-origin' ? 'same-origin' : 'cross-site'

  const origin = headers.origin
  if (origin !== undefined && origin !== 'null') return ownOrigin !== undefined && origin === ownOrigin ? 'same-origin' : 'cross-site'

  const referer = headers.referer
  if (referer !== undefined && (typeof referer !== 'string' || ownOrigin === undefined || originOf(referer) !== ownOrigin)) return 'cross-site'
  return 'unknown'
}

function originOf (url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

/** A Host (or X-Forwarded-Host) value: a name or an IP literal, and a port; nothing a URL parser could read otherwise. */
const HOST = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i

/**
 * The origin the browser sees the gateway at: PUBLIC_URL's when set; otherwise the request's own
 * scheme and host (X-Forwarded-Proto and X-Forwarded-Host only from a TRUST_PROXY peer, as Fastify's
 * request.protocol and request.host give them). undefined when they do not make an origin: then no
 * Origin or Referer matches it.
 */
export function gatewayOrigin (publicUrl: URL | undefined, request: { protocol: string | undefined, host: string | undefined }): string | undefined {
  if (publicUrl !== undefined) return publicUrl.origin
  const protocol = request.protocol?.toLowerCase()
  if ((protocol !== 'http' && protocol !== 'https') || request.host === undefined || !HOST.test(request.host)) return undefined
  return originOf(`${protocol}://${request.host}`)
}
