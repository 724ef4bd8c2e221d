// Admin mapping for OIDC sign-ins. Pure: the whole rule is here and in its unit test.

export interface AdminMapping {
  /** OIDC_ADMIN_GROUP */
  adminGroup: string | undefined
  /** OIDC_ADMIN_EMAILS, lower-cased */
  adminEmails: string[]
  /** ADMIN_USERNAMES, lower-cased */
  adminUsernames: string[]
}

export interface AdminSubject {
  username: string
  email: string | null
  emailVerified: boolean | undefined
  groups: string[]
}

/** A group or email mapping makes the IdP the source of truth for admin, recomputed at every login. */
export function isAdminMappingConfigured (mapping: AdminMapping): boolean {
  return mapping.adminGroup !== undefined || mapping.adminEmails.length > 0
}

/** Which setting makes someone an admin at an SSO sign-in (for the audit log). */
export type AdminRule = 'oidc-group' | 'oidc-email' | 'admin-usernames'

/** The first rule of the mapping that makes this subject an admin right now, or undefined. */
export function adminRuleFor (subject: AdminSubject, mapping: AdminMapping): AdminRule | undefined {
  if (mapping.adminGroup !== undefined && subject.groups.includes(mapping.adminGroup)) return 'oidc-group'
  // An address the IdP marks unverified may belong to anyone who typed it in: never trust it for admin.
  if (subject.email !== null && subject.emailVerified !== false && mapping.adminEmails.includes(subject.email.toLowerCase())) return 'oidc-email'
  return mapping.adminUsernames.includes(subject.username) ? 'admin-usernames' : undefined
}

/** What the mapping says right now: group membership (exact), email (case-insensitive, not marked unverified), or username. */
export function mappedAdmin (subject: AdminSubject, mapping: AdminMapping): boolean {
  return adminRuleFor(subject, mapping) !== undefined
}

/**
 * The admin flag after this login. With a group or email mapping it is recomputed (removing
 * someone from the group removes admin at their next login); without one, ADMIN_USERNAMES only
 * promotes, as for local sign-in, and admins granted with the CLI keep it.
 */
export function adminAfterLogin (current: boolean, subject: AdminSubject, mapping: AdminMapping): boolean {
  if (isAdminMappingConfigured(mapping)) return mappedAdmin(subject, mapping)
  return current || mapping.adminUsernames.includes(subject.username)
}
