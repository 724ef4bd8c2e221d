// Refresh tokens at rest: whoever reads the sessions table (a backup, a replica, an SQL injection
// elsewhere) must not get tokens that sign in as the users at the IdP. AES-256-GCM with a key
// derived from SECRET_KEY and the deployment id (keys.ts); the first key encrypts, every key
// (SECRET_KEY_PREVIOUS) decrypts, so a key rotation keeps the sessions' tokens. The session id is
// the additional authenticated data: a token copied into another session's row does not decrypt.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { deriveKeys } from './keys.js'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16

export class RefreshTokenCipher {
  private readonly keys: Buffer[]

  constructor (secretKeys: string[], deploymentId: string) {
    this.keys = deriveKeys(secretKeys, deploymentId, 'refresh-token-v1')
  }

  /** `v1.<base64url(iv | tag | ciphertext)>`, bound to the session id. */
  encrypt (sessionId: string, token: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.keys[0]!, iv)
    cipher.setAAD(aad(sessionId))
    const ciphertext = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()])
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64url')}`
  }

  /** The token, or undefined when no configured key decrypts it for this session (never throws). */
  decrypt (sessionId: string, sealed: string): string | undefined {
    if (!sealed.startsWith(VERSION + '.')) return undefined
    const bytes = Buffer.from(sealed.slice(VERSION.length + 1), 'base64url')
    if (bytes.length <= IV_BYTES + TAG_BYTES) return undefined
    const iv = bytes.subarray(0, IV_BYTES)
    const tag = bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES)
    const ciphertext = bytes.subarray(IV_BYTES + TAG_BYTES)
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
        decipher.setAAD(aad(sessionId))
        decipher.setAuthTag(tag)
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
      } catch {
        // Not this key (or altered): try the next.
      }
    }
    return undefined
  }
}

const aad = (sessionId: string): Buffer => Buffer.from('authgate refresh token:' + sessionId, 'utf8')
