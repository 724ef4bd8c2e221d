// ALLOWED_EMAIL_DOMAINS, ALLOWED_EMAILS, ALLOWED_GROUPS: who may sign in through single sign-on at
// all. A provider such as Google accepts every account in the world; these lists narrow that to the
// operator's people. Guards against an unverified email claiming the operator's domain, suffix tricks
// ("example.com.evil.test"), addresses with two "@" and groups that differ only in case.
import { emailDomain } from './access-rules.js'

export interface SignInAllowList {
  /** Lower-case domains, compared exactly (no subdomains). */
  emailDomains: string[]
  /** Lower-case addresses. */
  emails: string[]
  /** Exact, case-sensitive group names. */
  groups: string[]
}

export interface SignInCandidate {
  email: string | null
  /** Only `true` counts: an email the provider did not verify could be anybody's. */
  emailVerified: boolean | undefined
  groups: readonly string[]
}

export type AllowListResult = { ok: true } | { ok: false, reason: 'not-allowed' }

/** Whether any list is set: with none, every account the provider accepts may sign in. */
export function hasAllowList (list: SignInAllowList): boolean {
  return list.emailDomains.length > 0 || list.emails.length > 0 || list.groups.length > 0
}

/** Allowed when no list is set, or when the candidate matches at least one entry of any list. */
export function checkSignInAllowed (list: SignInAllowList, candidate: SignInCandidate): AllowListResult {
  if (!hasAllowList(list)) return { ok: true }
  const verifiedEmail = candidate.emailVerified === true ? candidate.email : null
  const domain = emailDomain(verifiedEmail)
  if (domain !== undefined) {
    if (list.emailDomains.includes(domain)) return { ok: true }
    if (list.emails.includes(verifiedEmail!.toLowerCase())) return { ok: true }
  }
  if (candidate.groups.some((g) => list.groups.includes(g))) return { ok: true }
  return { ok: false, reason: 'not-allowed' }
}
