// Who the gateway is to a passkey: the WebAuthn relying party. Its id is PUBLIC_URL's host name and
// the origin a ceremony must come from is PUBLIC_URL's origin; a passkey is bound to that id by the
// authenticator, so changing PUBLIC_URL's host orphans every passkey registered before.
// Without PUBLIC_URL (development only) the request's own origin is used, and only when its host is
// `localhost`: a browser treats http://localhost as a secure context and accepts it as an id, and no
// other site can be reached under that name, so a Host header cannot point a ceremony elsewhere.
// Pure: the decisions are unit-tested (test/unit/passkeys.test.ts).
import { isIP } from 'node:net'

export interface RelyingParty {
  /** The RP ID: a registrable domain name (never an IP address: browsers refuse those). */
  id: string
  /** The one origin ceremonies are accepted from. */
  origin: string
}

export interface RelyingPartySettings {
  publicUrl: URL | undefined
  production: boolean
}

/** Why passkeys cannot work with these settings at all (undefined: they can). Said once at startup. */
export function relyingPartyProblem (settings: RelyingPartySettings): string | undefined {
  if (settings.publicUrl === undefined) {
    return settings.production ? 'passkeys need PUBLIC_URL (its host name is the passkeys\' relying-party id): none are offered until it is set' : undefined
  }
  if (isIP(settings.publicUrl.hostname.replace(/^\[|\]$/g, '')) !== 0) return `passkeys need PUBLIC_URL to name a host, not an IP address (${settings.publicUrl.hostname}): browsers refuse an IP address as relying-party id; none are offered`
  return undefined
}

/**
 * The relying party for a request: PUBLIC_URL's, or in development without it the request's own
 * origin when its host is localhost. undefined: passkeys are not available for this request.
 * `protocol` and `host` as Fastify reads them (TRUST_PROXY decides whether X-Forwarded-* count).
 */
export function relyingPartyFor (settings: RelyingPartySettings, request: { protocol: string, host: string | undefined }): RelyingParty | undefined {
  if (relyingPartyProblem(settings) !== undefined) return undefined
  if (settings.publicUrl !== undefined) return { id: settings.publicUrl.hostname, origin: settings.publicUrl.origin }
  if (request.host === undefined || (request.protocol !== 'http' && request.protocol !== 'https')) return undefined
  let url: URL
  try {
    url = new URL(`${request.protocol}://${request.host}`)
  } catch {
    return undefined
  }
  // The host as parsed, nothing else: no userinfo, path or odd characters slipped in through Host.
  if (url.hostname !== 'localhost' || url.username !== '' || url.password !== '' || `${url.protocol}//${url.host}` !== `${request.protocol}://${request.host.toLowerCase()}`) return undefined
  return { id: 'localhost', origin: url.origin }
}
