// The identity a signed-in session carries to the upstream: the HMAC-signed headers of docs/PROTOCOL.md#identity-headers and,
// with IDENTITY_JWT, the ES256 assertion. One place, used by the proxy (HTTP and WebSocket) and by
// forward-auth, so every way out of the gateway carries exactly the same identity.
import { IdentitySigner, ASSERTION_HEADER, type Identity, type IdentityHeaders } from './headers.js'
import type { AssertionSigner } from './jwt.js'

export type OutgoingIdentityHeaders = IdentityHeaders & { [ASSERTION_HEADER]?: string }

/** What the issuer needs of a session: who, and the session's identity for the assertion cache. */
export interface SessionRef { uid: number, iat: number, exp: number }

export class IdentityIssuer {
  private readonly signer: IdentitySigner

  constructor (headerSigningSecret: string, private readonly assertions: AssertionSigner | undefined) {
    this.signer = new IdentitySigner(headerSigningSecret)
  }

  /** Whether headersFor must wait for anything (the IDENTITY_JWT assertion); else signedHeaders is all of it. */
  get asserts (): boolean {
    return this.assertions !== undefined
  }

  /** The HMAC-signed headers alone: at most one HMAC per identity and second (shared, read-only). */
  signedHeaders (identity: Identity, nowSeconds: number = Math.floor(Date.now() / 1000)): Readonly<OutgoingIdentityHeaders> {
    return this.signer.sign(identity, nowSeconds)
  }

  /** Every identity header, with IDENTITY_JWT the assertion (from its cache) too. */
  async headersFor (identity: Identity, session: SessionRef, nowSeconds: number = Math.floor(Date.now() / 1000)): Promise<Readonly<OutgoingIdentityHeaders>> {
    const headers = this.signer.sign(identity, nowSeconds)
    if (this.assertions === undefined) return headers
    return { ...headers, [ASSERTION_HEADER]: await this.assertions.assertionFor(identity, session, nowSeconds) }
  }
}
