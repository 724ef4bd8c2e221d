// Secrets at rest, sealed with AES-256-GCM under a key derived from SECRET_KEY and the deployment id
// (keys.ts), one key per purpose. The first key seals, every key (SECRET_KEY_PREVIOUS) opens, so a
// key rotation keeps what was sealed. The record the value belongs to (a session id, a user id) is
// the additional authenticated data: a value copied into another record's row does not open.
// A box can also be given its keys as they are (SealedBox.withKeys): the second factors' secrets are
// sealed under keys derived from their own data key (src/auth/mfa/data-key.ts), not from SECRET_KEY.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { deriveKeys } from './keys.js'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16

export class SealedBox {
  private readonly keys: readonly Buffer[]
  private readonly label: string

  /** `purpose`: the key derivation's label; `label`: what the bound record is, in the additional data. */
  constructor (secretKeys: string[], deploymentId: string, purpose: string, label: string)
  /** 32-byte keys as they are, the first seals (SealedBox.withKeys). */
  constructor (keys: readonly Buffer[], label: string)
  constructor (keys: string[] | readonly Buffer[], deploymentIdOrLabel: string, purpose?: string, label?: string) {
    if (purpose === undefined) {
      this.keys = keys as readonly Buffer[]
      this.label = deploymentIdOrLabel
    } else {
      this.keys = deriveKeys(keys as string[], deploymentIdOrLabel, purpose)
      this.label = label ?? purpose
    }
    if (this.keys.length === 0 || this.keys.some((key) => key.length !== 32)) throw new Error('SealedBox needs at least one 32-byte key')
  }

  /** A box over keys derived elsewhere (32 bytes each, the first seals, all open). */
  static withKeys (keys: readonly Buffer[], label: string): SealedBox {
    return new SealedBox(keys, label)
  }

  /** `v1.<base64url(iv | tag | ciphertext)>`, bound to `recordId`. */
  seal (recordId: string, plaintext: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.keys[0]!, iv)
    cipher.setAAD(this.aad(recordId))
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64url')}`
  }

  /** The plaintext, or undefined when no configured key opens it for this record (never throws). */
  open (recordId: string, sealed: string): string | undefined {
    return this.openWithKeyIndex(recordId, sealed)?.plaintext
  }

  /**
   * The plaintext and which key opened it (0: the sealing key; more: a previous one, so the value
   * is due to be sealed again), or undefined when none does (never throws).
   */
  openWithKeyIndex (recordId: string, sealed: string): { plaintext: string, keyIndex: number } | undefined {
    if (!sealed.startsWith(VERSION + '.')) return undefined
    const bytes = Buffer.from(sealed.slice(VERSION.length + 1), 'base64url')
    if (bytes.length <= IV_BYTES + TAG_BYTES) return undefined
    const iv = bytes.subarray(0, IV_BYTES)
    const tag = bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES)
    const ciphertext = bytes.subarray(IV_BYTES + TAG_BYTES)
    for (const [keyIndex, key] of this.keys.entries()) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
        decipher.setAAD(this.aad(recordId))
        decipher.setAuthTag(tag)
        return { plaintext: Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8'), keyIndex }
      } catch {
        // Not this key (or altered): try the next.
      }
    }
    return undefined
  }

  private aad (recordId: string): Buffer {
    return Buffer.from(`authgate ${this.label}:${recordId}`, 'utf8')
  }
}
