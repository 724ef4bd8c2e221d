// Key material derived from SECRET_KEY (and SECRET_KEY_PREVIOUS): one purpose, one derived key.
import { hkdfSync } from 'node:crypto'

export function deriveKey (secret: string, purpose: string, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'authgate', purpose, length))
}
