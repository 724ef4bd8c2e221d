// Which gateway user an OIDC identity signs in as. The decision is pure (decideLink); the upsert
// around it re-reads and re-decides whenever a concurrent sign-in changed the rows in between.
import type { User, UserRepository } from '../../db/users.js'
import type { MappedIdentity } from './claims.js'
import { adminAfterLogin, type AdminMapping } from './admin.js'

export interface OidcSubject { issuer: string, sub: string }

export interface LinkPolicy {
  allowSelfRegister: boolean
  /** OIDC_USERNAME_CLAIM is the email claim: the username is an email address and must be verified. */
  usernameIsEmail: boolean
}

export type LinkRefusal = 'not-registered' | 'linked-elsewhere' | 'unverified-email'

export type LinkDecision =
  | { action: 'use', user: User }
  | { action: 'link', user: User }
  | { action: 'create' }
  | { action: 'refuse', reason: LinkRefusal }

/**
 * - the (issuer, sub) link wins: usernames may change at the IdP, the subject does not;
 * - a user with the same username and no OIDC link yet is linked (how existing local users move to SSO);
 * - a user linked to another identity is never taken over;
 * - a username that is an email address is only trusted when the IdP says the address is verified
 *   (otherwise anyone could register that address at the IdP and become that user, here or upstream);
 * - unknown users are created only when ALLOW_SELF_REGISTER is on.
 */
export function decideLink (byIdentity: User | undefined, byUsername: User | undefined, identity: Pick<MappedIdentity, 'emailVerified'>, policy: LinkPolicy): LinkDecision {
  if (byIdentity !== undefined) return { action: 'use', user: byIdentity }
  if (policy.usernameIsEmail && identity.emailVerified !== true) return { action: 'refuse', reason: 'unverified-email' }
  if (byUsername !== undefined) {
    if (byUsername.oidcSub !== null || byUsername.oidcIssuer !== null) return { action: 'refuse', reason: 'linked-elsewhere' }
    return { action: 'link', user: byUsername }
  }
  return policy.allowSelfRegister ? { action: 'create' } : { action: 'refuse', reason: 'not-registered' }
}

export type UpsertResult =
  /** `wasAdmin`: the admin flag before this sign-in (false for a user it created). */
  | { ok: true, user: User, outcome: 'existing' | 'linked' | 'created', wasAdmin: boolean }
  | { ok: false, reason: LinkRefusal | 'disabled' }

const ATTEMPTS = 3

/**
 * Find or create the user for this identity, refresh full name and email, recompute admin and set
 * last_login_at, in one transaction. A lost race (another sign-in linked or created the row first)
 * shows up as a conditional write that changed nothing or a unique-index violation: decide again.
 */
export async function upsertOidcUser (users: UserRepository, subject: OidcSubject, identity: MappedIdentity, policy: LinkPolicy, admin: AdminMapping): Promise<UpsertResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await users.transaction(async (tx) => {
        const byIdentity = await tx.findByOidcIdentity(subject.issuer, subject.sub)
        const byUsername = byIdentity === undefined ? await tx.findByUsername(identity.username) : undefined
        const decision = decideLink(byIdentity, byUsername, identity, policy)
        let user: User
        switch (decision.action) {
          case 'refuse':
            return { ok: false, reason: decision.reason } as const
          case 'use':
            user = decision.user
            break
          case 'link':
            if (!(await tx.linkOidcIdentity(decision.user.id, subject.issuer, subject.sub))) return undefined
            user = decision.user
            break
          case 'create': {
            const created = await tx.create({ username: identity.username, oidcIssuer: subject.issuer, oidcSub: subject.sub })
            if (!created.created) return undefined
            user = created.user
            break
          }
        }
        if (!user.isActive) return { ok: false, reason: 'disabled' } as const
        const isAdmin = adminAfterLogin(user.isAdmin, { ...identity, username: user.username }, admin)
        const updated = await tx.recordOidcLogin(user.id, { fullName: identity.fullName, email: identity.email, isAdmin })
        const outcome = decision.action === 'use' ? 'existing' : decision.action === 'link' ? 'linked' : 'created'
        return { ok: true, user: updated, outcome, wasAdmin: user.isAdmin } as const
      })
      if (result !== undefined) return result
    } catch (err) {
      if (!isUniqueViolation(err) || attempt >= ATTEMPTS) throw err
      continue
    }
    if (attempt >= ATTEMPTS) throw new Error('OIDC user upsert kept losing races; giving up')
  }
}

/** SQLite and PostgreSQL spell "unique constraint violated" differently. */
export function isUniqueViolation (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505'
}
