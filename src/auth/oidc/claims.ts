// Claim mapping: from what the IdP sent (ID token claims merged with userinfo) to the gateway's
// identity. Pure, so every IdP shape we support is a unit test rather than a guess. Guards against
// two IdP accounts landing on one user (usernames are never folded, see db/username.ts) and against
// widened access where an upstream denies by group (groups are never silently dropped).
import { checkUsername } from '../../db/username.js'

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
  /** `message` is for the page (claim names, never values), `reason` for the log. */
  | { ok: false, code: 'missing-username' | 'invalid-username' | 'lookalike-username' | 'groups-too-large' | 'invalid-groups', message: string, reason: string }

/** Longer names are cut and longer emails ignored; groups beyond these limits refuse the sign-in. */
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

export type GroupsResult =
  | { ok: true, groups: string[] }
  | { ok: false, problem: 'too-many' | 'too-long' | 'unreadable', reason: string }

/**
 * Groups as a JSON array of strings (each taken exactly as sent), or one string separated by spaces
 * and/or commas; no claim (or null) is no groups. Empty entries and repeats are left out; anything
 * else is kept or the whole sign-in refused: an upstream may deny by group ("suspended"), so a group
 * left out could grant what it denies.
 */
export function parseGroups (value: unknown): GroupsResult {
  let items: unknown[]
  if (value === undefined || value === null) return { ok: true, groups: [] }
  if (Array.isArray(value)) items = value
  else if (typeof value === 'string') items = value.split(/[\s,]+/)
  else return { ok: false, problem: 'unreadable', reason: `a ${typeof value} instead of a list of names` }
  const groups = new Set<string>()
  for (const [i, item] of items.entries()) {
    if (typeof item !== 'string') return { ok: false, problem: 'unreadable', reason: `entry ${i + 1} of ${items.length} is ${item === null ? 'null' : `a ${typeof item}`}, not a name` }
    if (item.length > MAX_GROUP) return { ok: false, problem: 'too-long', reason: `group ${i + 1} of ${items.length} is longer than ${MAX_GROUP} characters (${item.length})` }
    if (item !== '') groups.add(item)
  }
  if (groups.size > MAX_GROUPS) return { ok: false, problem: 'too-many', reason: `${groups.size} groups, at most ${MAX_GROUPS} accepted` }
  return { ok: true, groups: [...groups] }
}

/** Message for the page when the groups cannot all be carried: what the operator can do. */
export function groupsTooLargeMessage (groupsClaim: string): string {
  return `Ask your administrator to have the provider send fewer groups (a filtered groups claim, or only the groups assigned to this application), or to read another claim (OIDC_GROUPS_CLAIM, now "${groupsClaim}").`
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
      reason: 'no username claim',
      message: `The sign-in provider did not send the username claim "${mapping.usernameClaim}" (OIDC_USERNAME_CLAIM). It sent: ${sent === '' ? 'no claims' : sent}. Set OIDC_USERNAME_CLAIM to one of these, or have the provider release that claim.`
    }
  }
  // Taken as sent, lower-cased only: the IdP's "ａｄｍｉｎ" or "\u212Aarl" is refused, never made "admin" or "karl".
  const checked = checkUsername(raw)
  if (!checked.ok) {
    const where = `The username is in the claim "${mapping.usernameClaim}".`
    const fix = 'Ask your administrator to change it at the provider, or to read another claim (OIDC_USERNAME_CLAIM).'
    return checked.problem === 'lookalike' || checked.problem === 'surrounding-space'
      ? {
          ok: false,
          code: 'lookalike-username',
          message: `${where} It contains characters that would be read as another name (compatibility forms such as fullwidth letters, ligatures or the Kelvin sign, separately encoded accents, or spaces around it), so it could be mistaken for another account. ${fix}`,
          reason: `username claim ${checked.problem === 'surrounding-space' ? 'has spaces around it' : `is not in NFKC form${checked.codePoint !== undefined ? ` (${checked.codePoint})` : ''}`}`
        }
      : {
          ok: false,
          code: 'invalid-username',
          message: `${where} Usernames here are 1 to 64 letters, digits and . _ @ + - characters. ${fix}`,
          reason: 'username claim has characters or a length usernames may not have'
        }
  }
  // A groups claim sent as a reference instead of a list (Entra ID "group overage", above 200
  // groups): reading it as "no groups" would drop them all.
  const distributed = claims['_claim_names']
  if (typeof distributed === 'object' && distributed !== null && Object.hasOwn(distributed, mapping.groupsClaim)) {
    return { ok: false, code: 'groups-too-large', message: groupsTooLargeMessage(mapping.groupsClaim), reason: `the provider sent a reference to the groups ("${mapping.groupsClaim}" in _claim_names) instead of the groups` }
  }
  const groups = parseGroups(claimAt(claims, mapping.groupsClaim))
  if (!groups.ok) {
    return groups.problem === 'unreadable'
      ? { ok: false, code: 'invalid-groups', message: `The claim "${mapping.groupsClaim}" (OIDC_GROUPS_CLAIM) must be a list of names, or one string of names separated by spaces or commas.`, reason: `groups claim: ${groups.reason}` }
      : { ok: false, code: 'groups-too-large', message: groupsTooLargeMessage(mapping.groupsClaim), reason: `groups claim "${mapping.groupsClaim}": ${groups.reason}` }
  }
  const email = optionalString(claimAt(claims, mapping.emailClaim), MAX_EMAIL, false)
  return {
    ok: true,
    identity: {
      username: checked.username,
      fullName: optionalString(claimAt(claims, mapping.fullNameClaim), MAX_FULL_NAME, true),
      email: email !== null && email.includes('@') ? email : null,
      emailVerified: parseEmailVerified(claims['email_verified']),
      groups: groups.groups
    }
  }
}
