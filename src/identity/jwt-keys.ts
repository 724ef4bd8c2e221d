// Keys for the identity assertion: parsed from PEM (IDENTITY_JWT_KEY, IDENTITY_JWT_KEY_PREVIOUS),
// or, in development only, generated once and kept in ./data like the other dev secrets.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const KEY_HELP = 'generate one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out identity-jwt-key.pem'

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g

/** Environment files often carry PEM on one line with literal `\n`; read those as newlines. */
function unescapePem (value: string): string {
  return value.includes('\n') ? value : value.replace(/\\n/g, '\n')
}

function isP256 (key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
}

/** An EC P-256 private key (PKCS#8 or SEC1 PEM), or an error message naming what is wrong. */
export function parseSigningKey (pem: string): KeyObject | string {
  const blocks = unescapePem(pem).match(PEM_BLOCK) ?? []
  if (blocks.length !== 1) return `must hold exactly one PEM private key; ${KEY_HELP}`
  let key: KeyObject
  try {
    key = createPrivateKey(blocks[0]!)
  } catch {
    return `is not a readable unencrypted PEM private key; ${KEY_HELP}`
  }
  return isP256(key) ? key : `must be an EC P-256 key (ES256); ${KEY_HELP}`
}

/** One or more PEM keys (public, or private whose public half is published), each EC P-256. */
export function parseVerificationKeys (pem: string): KeyObject[] | string {
  const blocks = unescapePem(pem).match(PEM_BLOCK) ?? []
  if (blocks.length === 0) return 'must hold one or more PEM keys (the previous IDENTITY_JWT_KEY, or its public key)'
  const keys: KeyObject[] = []
  for (const block of blocks) {
    let key: KeyObject
    try {
      key = createPublicKey(block)
    } catch {
      return 'holds a PEM block that is not a readable unencrypted key'
    }
    if (!isP256(key)) return 'must hold EC P-256 keys only (ES256)'
    keys.push(key)
  }
  return keys
}

/**
 * Development only: the key in ./data/identity-jwt-key.pem, generated on first use (mode 0600), and
 * whether this call created it (false: loaded from an earlier start).
 */
export function loadOrCreateDevSigningKey (dataDir: string, { write = true } = {}): { key: KeyObject, created: boolean } {
  const file = join(dataDir, 'identity-jwt-key.pem')
  try {
    const key = parseSigningKey(readFileSync(file, 'utf8'))
    if (typeof key !== 'string') return { key, created: false }
  } catch {
    // absent or unreadable: generate below
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  if (!write) return { key: privateKey, created: true }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  return { key: privateKey, created: true }
}
