// Refresh tokens at rest: whoever reads the sessions table (a backup, a replica, an SQL injection
// elsewhere) must not get tokens that sign in as the users at the IdP. Sealed (sealed-box.ts:
// AES-256-GCM, a key derived from SECRET_KEY, rotation-safe) and bound to the session id: a token
// copied into another session's row does not decrypt.
import { SealedBox } from './sealed-box.js'

export class RefreshTokenCipher {
  private readonly box: SealedBox

  constructor (secretKeys: string[], deploymentId: string) {
    this.box = new SealedBox(secretKeys, deploymentId, 'refresh-token-v1', 'refresh token')
  }

  /** `v1.<base64url(iv | tag | ciphertext)>`, bound to the session id. */
  encrypt (sessionId: string, token: string): string {
    return this.box.seal(sessionId, token)
  }

  /** The token, or undefined when no configured key decrypts it for this session (never throws). */
  decrypt (sessionId: string, sealed: string): string | undefined {
    return this.box.open(sessionId, sealed)
  }
}
