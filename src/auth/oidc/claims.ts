// Claim mapping: from what the IdP sent (ID token claims merged with userinfo) to the gateway's
// identity. Pure, so every IdP shape we support is a unit test rather than a guess.
import { normalizeUsername } from '../../db/users.js'
import { isValidUsername } from '../local/routes.js'

export interface ClaimMapping {
  usernameClaim: string
  fullNameClaim: string
  emailClaim: string
  groupsClaim: string
}

export interface MappedIdentity {
  username: string
  fullName: string | null
  email: string | null
  /** true / false when the IdP said so (`email_verified`), undefined when it did not. */
  emailVerified: boolean | undefined
  groups: string[]
}

export type ClaimMappingResult =
  | { ok: true, identity: MappedIdentity }
  | { ok: false, code: 'missing-username' | 'invalid-username', message: string }

/** Longer values are IdP misconfiguration or abuse; they are cut (names) or dropped (emails, groups). */
export const MAX_FULL_NAME = 256
export const MAX_EMAIL = 254
export const MAX_GROUP = 256
export const MAX_GROUPS = 256

/**
 * The value at `path`: the literal claim name first (Auth0-style namespaced claims such as
 * "https://example.com/groups" contain dots), else a dotted walk into nested objects
 * ("realm_access.roles" in Keycloak).
 */
export function claimAt (claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path]
  let value: unknown = claims
  for (const segment of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, segment)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

/** Groups as a JSON array of strings, or one string separated by spaces and/or commas. */
export function parseGroups (value: unknown): string[] {
  let items: unknown[]
  if (Array.isArray(value)) items = value
  else if (typeof value === 'string') items = value.split(/[\s,]+/)
  else return []
  const groups: string[] = []
  for (const item of items) {
    if (typeof item !== 'string') continue
    const group = item.trim()
    if (group === '' || group.length > MAX_GROUP || groups.includes(group)) continue
    groups.push(group)
    if (groups.length === MAX_GROUPS) break
  }
  return groups
}

/** `email_verified` as a boolean; some IdPs (AWS Cognito) send the strings "true" / "false". */
export function parseEmailVerified (value: unknown): boolean | undefined {
  if (value === true || value === 'true') return true
  if (value === false || value === 'false') return false
  return undefined
}

function optionalString (value: unknown, max: number, cut: boolean): string | null {
  if (typeof value !== 'string') return null
  const s = value.trim()
  if (s === '') return null
  if (s.length > max) return cut ? s.slice(0, max) : null
  return s
}

export function mapClaims (claims: Record<string, unknown>, mapping: ClaimMapping): ClaimMappingResult {
  const raw = claimAt(claims, mapping.usernameClaim)
  if (typeof raw !== 'string' || raw.trim() === '') {
    // Claim names only: their values are personal data and do not belong in a page or a log.
    const sent = Object.keys(claims).sort().join(', ')
    return {
      ok: false,
      code: 'missing-username',
      message: `The sign-in provider did not send the username claim "${mapping.usernameClaim}" (OIDC_USERNAME_CLAIM). It sent: ${sent === '' ? 'no claims' : sent}. Set OIDC_USERNAME_CLAIM to one of these, or have the provider release that claim.`
    }
  }
  const username = normalizeUsername(raw)
  if (!isValidUsername(username)) {
    return {
      ok: false,
      code: 'invalid-username',
      message: `The username in the claim "${mapping.usernameClaim}" is not usable here: usernames are 1 to 64 letters, digits and . _ @ + - characters.`
    }
  }
  const email = optionalString(claimAt(claims, mapping.emailClaim), MAX_EMAIL, false)
  return {
    ok: true,
    identity: {
      username,
      fullName: optionalString(claimAt(claims, mapping.fullNameClaim), MAX_FULL_NAME, true),
      email: email !== null && email.includes('@') ? email : null,
      emailVerified: parseEmailVerified(claims['email_verified']),
      groups: parseGroups(claimAt(claims, mapping.groupsClaim))
    }
  }
}
