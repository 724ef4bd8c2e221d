// IDENTITY_JWT=true: a signed assertion of the identity (X-Identity-Assertion) and the public keys
// that verify it, published at the JWKS route.
import type { KeyObject } from 'node:crypto'
import { KEY_HELP, loadOrCreateDevSigningKey, parseSigningKey, parseVerificationKeys } from '../identity/jwt-keys.js'
import type { Reader } from './environment.js'
import { parseBool } from './parse.js'
import type { DevSecretsContext } from './secrets.js'

/** IDENTITY_JWT=true: the signed assertion sent as X-Identity-Assertion and published keys. */
export interface IdentityJwtConfig {
  signingKey: KeyObject
  /** Public keys still published in the JWKS during a rotation (IDENTITY_JWT_KEY_PREVIOUS). */
  previousKeys: KeyObject[]
  /** `iss`: PUBLIC_URL's origin. */
  issuer: string
  /** `aud`: IDENTITY_JWT_AUDIENCE; undefined means the upstream's origin (known once it runs). */
  audience: string | undefined
}

export function parseIdentityJwt (
  r: Reader,
  ctx: DevSecretsContext & { publicUrl: URL | undefined, canGenerate: boolean }
): IdentityJwtConfig | undefined {
  const { get, fail } = r
  const enabled = parseBool('IDENTITY_JWT', get('IDENTITY_JWT') ?? 'false', fail)
  if (enabled !== true) return undefined
  if (ctx.publicUrl === undefined) fail('PUBLIC_URL', 'is required when IDENTITY_JWT=true (it is the assertion\'s issuer, iss); e.g. https://tt.example.com')
  let signingKey: KeyObject | undefined
  const pem = get('IDENTITY_JWT_KEY')
  if (pem !== undefined) {
    const parsed = parseSigningKey(pem)
    if (typeof parsed === 'string') fail('IDENTITY_JWT_KEY', parsed)
    else signingKey = parsed
  } else if (ctx.production) {
    fail('IDENTITY_JWT_KEY', `is required when IDENTITY_JWT=true and NODE_ENV=production (or set IDENTITY_JWT_KEY_FILE); ${KEY_HELP}`)
  } else if (ctx.canGenerate && ctx.publicUrl !== undefined) {
    // Development only, like the other generated secrets: stable across restarts, logged as a warning.
    const dev = loadOrCreateDevSigningKey(ctx.dataDir, { write: ctx.write })
    signingKey = dev.key
    const devSecrets = dev.created ? ctx.generatedSecrets : ctx.loadedSecrets
    devSecrets.push('IDENTITY_JWT_KEY')
  }
  let previousKeys: KeyObject[] = []
  const previous = get('IDENTITY_JWT_KEY_PREVIOUS')
  if (previous !== undefined) {
    const parsed = parseVerificationKeys(previous)
    if (typeof parsed === 'string') fail('IDENTITY_JWT_KEY_PREVIOUS', parsed)
    else previousKeys = parsed
  }
  const audience = get('IDENTITY_JWT_AUDIENCE')
  if (signingKey === undefined || ctx.publicUrl === undefined) return undefined
  return { signingKey, previousKeys, issuer: ctx.publicUrl.origin, audience }
}
