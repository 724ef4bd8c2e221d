// The gateway's own secrets: SECRET_KEY (sessions; previous keys still decrypt during a rotation)
// and HEADER_SIGNING_SECRET (shared with the upstream). Development generates them once in ./data.
import { loadOrCreateDevSecrets } from './dev-secrets.js'
import type { Fail, Reader } from './environment.js'

export const MIN_SECRET_LENGTH = 32

export interface SecretsConfig {
  /** Current key first, then the previous ones still accepted for decryption. */
  secretKeys: string[]
  headerSigningSecret: string
}

/** Where development secrets live, and the lists of those generated or loaded by this start. */
export interface DevSecretsContext {
  production: boolean
  dataDir: string
  generatedSecrets: string[]
  loadedSecrets: string[]
  /** false: development secrets generated now are not stored (a read-only check). */
  write: boolean
}

export function parseSecrets (r: Reader, ctx: DevSecretsContext): Partial<SecretsConfig> {
  const { get, getList, fail, problems } = r
  const { production } = ctx
  let secretKey = get('SECRET_KEY')
  let headerSigningSecret = get('HEADER_SIGNING_SECRET')
  if (!production && (secretKey === undefined || headerSigningSecret === undefined) && problems.length === 0) {
    // Development only: a stable generated secret, so restarts keep sessions and the demo verifies.
    const dev = loadOrCreateDevSecrets(ctx.dataDir, { write: ctx.write })
    const devSecrets = dev.created ? ctx.generatedSecrets : ctx.loadedSecrets
    if (secretKey === undefined) { secretKey = dev.secrets.SECRET_KEY; devSecrets.push('SECRET_KEY') }
    if (headerSigningSecret === undefined) { headerSigningSecret = dev.secrets.HEADER_SIGNING_SECRET; devSecrets.push('HEADER_SIGNING_SECRET') }
  }
  // A secret whose _FILE failed is already reported; in development a missing one is generated once
  // the other problems are fixed, so only production reports it as missing.
  const unreadable = new Set(problems.map((p) => p.name.replace(/_FILE$/, '')))
  if (!unreadable.has('SECRET_KEY') && (production || secretKey !== undefined)) checkSecret('SECRET_KEY', secretKey, fail)
  if (!unreadable.has('HEADER_SIGNING_SECRET') && (production || headerSigningSecret !== undefined)) checkSecret('HEADER_SIGNING_SECRET', headerSigningSecret, fail)
  const previousKeys = getList('SECRET_KEY_PREVIOUS')
  for (const key of previousKeys) checkSecret('SECRET_KEY_PREVIOUS', key, fail)
  // The upstream holds HEADER_SIGNING_SECRET; if it could also derive the session keys, it (or anyone
  // who reads its configuration) could mint a session for any user, administrators included.
  if (headerSigningSecret !== undefined && (headerSigningSecret === secretKey || previousKeys.includes(headerSigningSecret))) {
    fail('HEADER_SIGNING_SECRET', 'must differ from SECRET_KEY and SECRET_KEY_PREVIOUS (the upstream holds it; it must not be able to forge sessions); generate one with: openssl rand -base64 48')
  }
  return { secretKeys: [secretKey!, ...previousKeys], headerSigningSecret }
}

function checkSecret (name: string, value: string | undefined, fail: Fail): void {
  if (value === undefined) {
    fail(name, `is required when NODE_ENV=production; generate one with: openssl rand -base64 48 or npx authgate secrets generate (or set ${name}_FILE)`)
  } else if (value.length < MIN_SECRET_LENGTH) {
    fail(name, `must be at least ${MIN_SECRET_LENGTH} characters; generate one with: openssl rand -base64 48 or npx authgate secrets generate`)
  }
}
