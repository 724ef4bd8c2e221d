// The identity a signed-in session carries to the upstream: the HMAC-signed headers of docs/PROTOCOL.md#identity-headers and,
// with IDENTITY_JWT, the ES256 assertion. One place, used by the proxy (HTTP and WebSocket) and by
// forward-auth, so every way out of the gateway carries exactly the same identity.
import { signIdentity, ASSERTION_HEADER, type Identity, type IdentityHeaders } from './headers.js'
import type { AssertionSigner } from './jwt.js'

export type OutgoingIdentityHeaders = IdentityHeaders & { [ASSERTION_HEADER]?: string }

/** What the issuer needs of a session: who, and the session's identity for the assertion cache. */
export interface SessionRef { uid: number, iat: number, exp: number }

export class IdentityIssuer {
  constructor (private readonly headerSigningSecret: string, private readonly assertions: AssertionSigner | undefined) {}

  /** Per request: one HMAC over a few short strings, plus (with IDENTITY_JWT) a cache lookup. */
  async headersFor (identity: Identity, session: SessionRef, nowSeconds: number = Math.floor(Date.now() / 1000)): Promise<OutgoingIdentityHeaders> {
    const headers: OutgoingIdentityHeaders = signIdentity(identity, this.headerSigningSecret, nowSeconds)
    if (this.assertions !== undefined) headers[ASSERTION_HEADER] = await this.assertions.assertionFor(identity, session, nowSeconds)
    return headers
  }
}
