// Who may sign in through single sign-on (ALLOWED_EMAIL_DOMAINS, ALLOWED_EMAILS, ALLOWED_GROUPS) and
// who may open which paths (ACCESS_RULES). A bad rule stops startup with one message per rule: a
// typo in a rule must never leave a path open that the operator meant to close.
import type { Reader } from './environment.js'
import { isSkipAuthPath } from '../proxy/access.js'
import { parseAccessRules, type AccessRule } from '../policy/access-rules.js'
import type { SignInAllowList } from '../policy/sign-in-allow-list.js'

export interface AccessConfig {
  signInAllowList: SignInAllowList
  /** Longest path first. */
  accessRules: AccessRule[]
}

const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/
const EMAIL = /^[^@\s]+@[^@\s]+$/

/** An ALLOWED_EMAIL_DOMAINS list (or a provider's own, OIDC_<ID>_ALLOWED_EMAIL_DOMAINS): lower-case, without "@". */
export function parseEmailDomains (r: Reader, name: string): string[] {
  const domains = r.getList(name).map((d) => d.toLowerCase().replace(/^@/, ''))
  const bad = domains.find((d) => !DOMAIN.test(d))
  if (bad !== undefined) r.fail(name, `"${bad}" is not a domain name; list domains such as example.com (exact: subdomains are not included)`)
  return domains
}

/** An ALLOWED_EMAILS list (or a provider's own): lower-case addresses. */
export function parseEmails (r: Reader, name: string): string[] {
  const emails = r.getList(name).map((e) => e.toLowerCase())
  const bad = emails.find((e) => !EMAIL.test(e))
  if (bad !== undefined) r.fail(name, `"${bad}" is not an email address; list addresses such as alice@example.com`)
  return emails
}

export function parseAccess (r: Reader, skipAuthPaths: readonly string[] | undefined): Partial<AccessConfig> {
  const { get, getList, fail } = r
  const emailDomains = parseEmailDomains(r, 'ALLOWED_EMAIL_DOMAINS')
  const emails = parseEmails(r, 'ALLOWED_EMAILS')
  const groups = getList('ALLOWED_GROUPS')

  const parsed = parseAccessRules(get('ACCESS_RULES') ?? '')
  let accessRules: AccessRule[] | undefined
  if (!parsed.ok) {
    for (const problem of parsed.problems) fail('ACCESS_RULES', problem)
  } else {
    accessRules = parsed.rules
    for (const rule of parsed.rules) {
      // A path that skips authentication has no user to check: the rule could never be enforced.
      if (skipAuthPaths !== undefined && isSkipAuthPath(rule.path, skipAuthPaths)) {
        accessRules = fail('ACCESS_RULES', `the rule for ${rule.path} can never apply: the path is in SKIP_AUTH_PATHS, which skips sign-in there; remove one of the two`)
      }
    }
  }
  return { signInAllowList: { emailDomains, emails, groups }, accessRules }
}
