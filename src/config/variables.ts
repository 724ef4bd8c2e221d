// The one list of environment variables the gateway reads, and the check against typos in them: a
// misspelt UPSTREAM_ULR must not silently leave the demo upstream in place, nor a misspelt
// LOCAL_AUTH leave the name-only sign-in on. loadConfig adds every name it actually reads; the list
// covers the ones read only under some settings (a unit test checks that each get('…') is listed).

/** Secrets, each of which may instead be given as `<NAME>_FILE` (Docker and Kubernetes secrets). */
export const SECRET_VARIABLES = ['SECRET_KEY', 'SECRET_KEY_PREVIOUS', 'HEADER_SIGNING_SECRET', 'OIDC_CLIENT_SECRET',
  'IDENTITY_JWT_KEY', 'IDENTITY_JWT_KEY_PREVIOUS', 'DATABASE_URL'] as const

/** Every other variable the configuration reads. Add new ones here (test/unit/config-variables.test.ts checks). */
const SETTINGS = [
  'NODE_ENV', 'PORT', 'HOST', 'PUBLIC_URL', 'UPSTREAM_URL',
  'DATABASE_POOL_SIZE', 'DATABASE_CONNECT_TIMEOUT', 'DATABASE_STATEMENT_TIMEOUT', 'DATABASE_CA_FILE',
  'AUTH_METHOD', 'LOCAL_AUTH', 'LOCAL_MFA', 'ALLOW_SELF_REGISTER', 'ADMIN_USERNAMES',
  'OIDC_PROVIDERS', 'OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_AUTH_METHOD', 'OIDC_REDIRECT_URI', 'OIDC_SCOPES',
  'OIDC_USERNAME_CLAIM', 'OIDC_FULL_NAME_CLAIM', 'OIDC_EMAIL_CLAIM', 'OIDC_GROUPS_CLAIM',
  'OIDC_ADMIN_GROUP', 'OIDC_ADMIN_EMAILS', 'OIDC_POST_LOGOUT_REDIRECT_URI', 'OIDC_BUTTON_TEXT', 'OIDC_REFRESH_INTERVAL',
  'OIDC_TIMEOUT', 'OIDC_RATE_LIMIT',
  'ALLOWED_EMAIL_DOMAINS', 'ALLOWED_EMAILS', 'ALLOWED_GROUPS', 'ACCESS_RULES',
  'SESSION_COOKIE_SECURE', 'SESSION_MAX_AGE', 'REVOCATION_MAX_STALENESS', 'TRUST_PROXY', 'SKIP_AUTH_PATHS',
  'UPSTREAM_POOL_SIZE', 'UPSTREAM_HEADER_TIMEOUT', 'CLIENT_HEADER_TIMEOUT', 'CLIENT_BODY_IDLE_TIMEOUT', 'CLIENT_BODY_MIN_RATE', 'CLIENT_MAX_CONCURRENT_REQUESTS',
  'IDENTITY_JWT', 'IDENTITY_JWT_AUDIENCE',
  'LOG_LEVEL', 'LOG_FORMAT', 'APP_NAME', 'LOGO_URL', 'LOGO_FILE',
  'METRICS_PORT', 'METRICS_HOST', 'SHUTDOWN_GRACE_PERIOD', 'WORKERS'
] as const

export const KNOWN_VARIABLES: ReadonlySet<string> = new Set<string>([
  ...SETTINGS, ...SECRET_VARIABLES, ...SECRET_VARIABLES.map((name) => `${name}_FILE`)
])

/** Names that look like the gateway's own settings: an unknown one among them is most likely a typo. */
const GATEWAY_PREFIXES = ['AUTH', 'DATABASE_', 'OIDC_', 'UPSTREAM', 'SESSION_', 'SECRET', 'HEADER_', 'ADMIN_', 'ALLOW', 'CLIENT_', 'METRICS_', 'SHUTDOWN_', 'REVOCATION_']

// Kubernetes adds <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_8080_TCP_ADDR and so on for every Service
// in the namespace; a Service named "authgate" or "upstream" must not look like a typo.
const KUBERNETES_SERVICE_LINK = /_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/

export interface UnknownVariable {
  name: string
  /** The known name it most likely means (a few letters apart), if any. */
  didYouMean?: string
}

/** The set variables that carry the gateway's prefixes but that it does not read (sorted by name). */
export function findUnknownVariables (names: Iterable<string>, known: ReadonlySet<string> = KNOWN_VARIABLES): UnknownVariable[] {
  const unknown: UnknownVariable[] = []
  for (const name of [...new Set(names)].sort()) {
    if (known.has(name) || !GATEWAY_PREFIXES.some((p) => name.startsWith(p)) || KUBERNETES_SERVICE_LINK.test(name)) continue
    const didYouMean = closestName(name, known)
    unknown.push(didYouMean !== undefined ? { name, didYouMean } : { name })
  }
  return unknown
}

/** One log line's worth: `UPSTREAM_ULR (did you mean UPSTREAM_URL?), AUTH_MODE`. */
export function describeUnknownVariables (unknown: UnknownVariable[]): string {
  return unknown.map((u) => u.didYouMean !== undefined ? `${u.name} (did you mean ${u.didYouMean}?)` : u.name).join(', ')
}

/** At most two edits (a swapped pair of letters counts as one) away; the nearest wins, ties by name. */
function closestName (name: string, known: ReadonlySet<string>): string | undefined {
  let best: { name: string, distance: number } | undefined
  for (const candidate of [...known].sort()) {
    const distance = editDistance(name, candidate)
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name: candidate, distance }
  }
  return best?.name
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let value = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, d[i - 2]![j - 2]! + 1)
      d[i]![j] = value
    }
  }
  return d[a.length]![b.length]!
}
