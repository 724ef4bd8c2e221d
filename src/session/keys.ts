// Key material derived from SECRET_KEY (and SECRET_KEY_PREVIOUS) and the deployment's id: one
// purpose, one derived key. The deployment id (a random value in the database, see
// src/db/sessions.ts) keeps a cookie from one deployment (staging) from being valid in another
// (production) that was given the same SECRET_KEY; replicas sharing a database share the id.
import { hkdfSync } from 'node:crypto'

export function deriveKey (secret: string, deploymentId: string, purpose: string, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'authgate:' + deploymentId, purpose, length))
}

/** One key per secret, current first: the first encrypts, all of them decrypt (rotation). */
export function deriveKeys (secrets: string[], deploymentId: string, purpose: string): Buffer[] {
  return secrets.map((secret) => deriveKey(secret, deploymentId, purpose))
}
