// Single sign-on through OpenID Connect providers (AUTH_METHOD=oidc or both): one provider from the
// unprefixed OIDC_* variables, or several listed in OIDC_PROVIDERS, each configured by its own
// OIDC_<ID>_* variables with the unprefixed ones as defaults (docs/PROTOCOL.md#several-identity-providers).
import { isLoopbackHost } from './net.js'
import type { Reader } from './environment.js'
import { oneOf, optionalUrl, parseBool, parseIntIn } from './parse.js'
import { parseEmailDomains, parseEmails } from './access.js'
import type { SignInAllowList } from '../policy/sign-in-allow-list.js'

export interface OidcConfig {
  /** The provider's id: from OIDC_PROVIDERS, or SINGLE_PROVIDER_ID for the unprefixed variables. */
  id: string
  /** The name the provider's readiness check is reported under (`oidc`, or `oidc:<id>` for several). */
  readinessName: string
  issuer: URL
  clientId: string
  clientSecret: string
  /** How the gateway authenticates at the token endpoint (OIDC_CLIENT_AUTH_METHOD). */
  clientAuthMethod: 'client_secret_post' | 'client_secret_basic'
  redirectUri: URL
  scopes: string
  usernameClaim: string
  fullNameClaim: string
  emailClaim: string
  groupsClaim: string
  adminGroup: string | undefined
  adminEmails: string[]
  postLogoutRedirectUri: URL | undefined
  buttonText: string
  /**
   * Seconds between re-validations of an SSO session with the IdP (its refresh token, see
   * src/auth/oidc/revalidation.ts); 0: never re-validated, the sign-in's identity holds until expiry.
   */
  refreshInterval: number
  /** Who may sign in through this provider (ALLOWED_*, or OIDC_<ID>_ALLOWED_* for one of several). */
  signInAllowList: SignInAllowList
  /** Whether a person this provider vouches for gets an account created (ALLOW_SELF_REGISTER, or OIDC_<ID>_ALLOW_SELF_REGISTER). */
  allowSelfRegister: boolean
  /**
   * Seconds each request to this IdP may take, answer read (discovery, token, userinfo, JWKS, refresh):
   * past it the request is abandoned, and a sign-in answers "provider unavailable".
   */
  timeout: number
}

/** Longest OIDC_REFRESH_INTERVAL: a day (SESSION_MAX_AGE is usually no longer). */
export const MAX_REFRESH_INTERVAL = 86400
/** OIDC_TIMEOUT's default and bounds, in seconds: longer than a minute, a person has given up anyway. */
export const OIDC_TIMEOUT_DEFAULT = 10
export const MAX_OIDC_TIMEOUT = 60
/** OIDC_RATE_LIMIT's default: flows per minute from one client address. A person needs one or two; an office behind one NAT address, or a front proxy not named in TRUST_PROXY, counts as one address. */
export const OIDC_RATE_LIMIT_DEFAULT = 120
/** The id of the one provider the unprefixed OIDC_* variables configure (OIDC_PROVIDERS unset). */
export const SINGLE_PROVIDER_ID = 'sso'
/** More buttons than this is not a login page any more; more flows than this are not one deployment's. */
export const MAX_PROVIDERS = 16

/** A provider id of OIDC_PROVIDERS; the session cookie's `p` is checked against the same. */
export const PROVIDER_ID = /^[a-z0-9-]{1,32}$/

/** The settings every provider may set for itself (OIDC_<ID>_<SETTING>), or inherit from OIDC_<SETTING>. */
export const PROVIDER_SETTINGS = ['ISSUER', 'CLIENT_ID', 'CLIENT_SECRET', 'CLIENT_AUTH_METHOD', 'REDIRECT_URI', 'SCOPES',
  'USERNAME_CLAIM', 'FULL_NAME_CLAIM', 'EMAIL_CLAIM', 'GROUPS_CLAIM', 'ADMIN_GROUP', 'ADMIN_EMAILS',
  'POST_LOGOUT_REDIRECT_URI', 'BUTTON_TEXT', 'REFRESH_INTERVAL', 'ALLOWED_EMAIL_DOMAINS', 'ALLOWED_EMAILS', 'ALLOWED_GROUPS', 'ALLOW_SELF_REGISTER', 'TIMEOUT'] as const
export type ProviderSetting = typeof PROVIDER_SETTINGS[number]
/** Each provider's own: one issuer cannot be two providers, and a client is registered at one IdP. */
export const OWN_SETTINGS: readonly ProviderSetting[] = ['ISSUER', 'CLIENT_ID', 'CLIENT_SECRET']

/** The variable prefix of a provider id: upper-cased, `-` as `_` (`corp-sso` → `OIDC_CORP_SSO_`). */
export function providerPrefix (id: string): string {
  return `OIDC_${id.toUpperCase().replace(/-/g, '_')}_`
}

/** Where each of one provider's settings is read from, and where its default comes from. */
interface ProviderNames {
  /** The variable holding this provider's own value of a setting. */
  own: (setting: ProviderSetting) => string
  /** The variable for the default of a setting every provider shares, when there is one. */
  shared: (setting: ProviderSetting) => string | undefined
}

/** The gateway-wide defaults a provider inherits unless it sets its own. */
export interface ProviderDefaults {
  signInAllowList: SignInAllowList | undefined
  allowSelfRegister: boolean | undefined
}

export function parseOidcProviders (r: Reader, defaults: ProviderDefaults): OidcConfig[] | undefined {
  const { get, getList, fail } = r
  // A list set to empty is the empty list (docs/PROTOCOL.md#list-variables): refused below, not the single provider.
  if (!r.isSet('OIDC_PROVIDERS')) {
    const single = parseProvider(r, SINGLE_PROVIDER_ID, 'oidc', { own: (s) => unprefixed(s), shared: () => undefined }, defaults, 'is required when AUTH_METHOD is oidc or both')
    return single !== undefined ? [single] : undefined
  }
  const ids = getList('OIDC_PROVIDERS')
  const problemsBefore = r.problems.length
  if (ids.length === 0) fail('OIDC_PROVIDERS', 'lists no provider; list provider ids such as corp,partner, or leave it unset to use OIDC_ISSUER alone')
  if (ids.length > MAX_PROVIDERS) fail('OIDC_PROVIDERS', `lists ${ids.length} providers; at most ${MAX_PROVIDERS}`)
  const seen = new Set<string>()
  /** Each listed provider's variable names, to find two providers that would share one. */
  const owner = new Map<string, string>()
  for (const id of ids) {
    if (!PROVIDER_ID.test(id)) { fail('OIDC_PROVIDERS', `"${id.slice(0, 40)}" is not a provider id: use lower-case letters, digits and "-" (at most 32), e.g. corp,partner`); continue }
    if (seen.has(id)) { fail('OIDC_PROVIDERS', `lists "${id}" twice; each provider once`); continue }
    seen.add(id)
    // With the id `client`, the shared OIDC_CLIENT_AUTH_METHOD would read as one of its own variables
    // (OIDC_CLIENT_ + AUTH_METHOD): an id whose prefix starts a shared setting's name is refused
    // rather than left for the operator to misread.
    const shared = PROVIDER_SETTINGS.map(unprefixed).find((name) => name.startsWith(providerPrefix(id)))
    if (shared !== undefined) { fail('OIDC_PROVIDERS', `"${id}" cannot be a provider id: its variables (${providerPrefix(id)}…) would be confused with the shared setting ${shared}; choose another id`); continue }
    // `x` and `x-post-logout`: OIDC_X_POST_LOGOUT_REDIRECT_URI would be a variable of both.
    const twin = PROVIDER_SETTINGS.map((s) => providerPrefix(id) + s).find((name) => owner.has(name))
    if (twin !== undefined) { fail('OIDC_PROVIDERS', `"${owner.get(twin)!}" and "${id}" cannot both be provider ids: ${twin} would be a variable of both; choose another id`); continue }
    for (const s of PROVIDER_SETTINGS) owner.set(providerPrefix(id) + s, id)
  }
  // Each provider has its own issuer and client: the unprefixed ones would be a provider nobody listed.
  for (const setting of OWN_SETTINGS) {
    const name = unprefixed(setting)
    // OIDC_CLIENT_SECRET_FILE has been read into OIDC_CLIENT_SECRET already: name the one the operator set.
    const set = get(`${name}_FILE`) !== undefined ? `${name}_FILE` : get(name) !== undefined ? name : undefined
    if (set !== undefined) fail(set, `is not used when OIDC_PROVIDERS is set; set ${ids.map((id) => providerPrefix(id) + setting).join(', ')} instead`)
  }
  if (r.problems.length > problemsBefore) return undefined
  const providers: OidcConfig[] = []
  for (const id of ids) {
    const names: ProviderNames = {
      own: (s) => providerPrefix(id) + s,
      shared: (s) => OWN_SETTINGS.includes(s) ? undefined : unprefixed(s)
    }
    // Read by readEnvironment, not through the reader: known here, or the unknown-variable warning would call it a typo.
    r.isSet(`${providerPrefix(id)}CLIENT_SECRET_FILE`)
    const provider = parseProvider(r, id, `oidc:${id}`, names, defaults, `is required for provider ${id} (listed in OIDC_PROVIDERS)`)
    if (provider !== undefined) providers.push(provider)
  }
  // The mix-up defence tells providers apart by issuer: two with one issuer could not be told apart.
  for (let i = 0; i < providers.length; i++) {
    const twin = providers.slice(0, i).find((p) => sameIssuer(p.issuer, providers[i]!.issuer))
    if (twin !== undefined) fail(providerPrefix(providers[i]!.id) + 'ISSUER', `is the issuer of provider ${twin.id} too; each provider needs its own issuer`)
  }
  return providers.length === ids.length && r.problems.length === problemsBefore ? providers : undefined
}

/** The shared variable of a setting: OIDC_<SETTING>, or the gateway-wide ALLOWED_* / ALLOW_SELF_REGISTER. */
export function unprefixed (setting: ProviderSetting): string {
  return setting.startsWith('ALLOW') ? setting : `OIDC_${setting}`
}

function sameIssuer (a: URL, b: URL): boolean {
  return a.href.replace(/\/+$/, '') === b.href.replace(/\/+$/, '')
}

function parseProvider (r: Reader, id: string, readinessName: string, names: ProviderNames, defaults: ProviderDefaults, whyRequired: string): OidcConfig | undefined {
  const { fail } = r
  /**
   * The variable a setting is read from: the provider's own when set, even to empty, else the shared
   * default. `OIDC_PARTNER_ADMIN_GROUP=` must mean no admin group for partner (the built-in default),
   * never the staff's OIDC_ADMIN_GROUP; `OIDC_PARTNER_ADMIN_EMAILS=`, nobody by email.
   */
  const variable = (setting: ProviderSetting): string => {
    const own = names.own(setting)
    const shared = names.shared(setting)
    return shared === undefined || r.isSet(own) ? own : shared
  }
  /** The setting's value; `name` says which variable to blame. */
  const read = (setting: ProviderSetting): { name: string, value: string | undefined } => {
    const name = variable(setting)
    return { name, value: r.get(name) }
  }
  const readList = (setting: ProviderSetting, whenUnset: string[] = [], separator?: RegExp): { name: string, value: string[] } => {
    const name = variable(setting)
    return { name, value: r.getList(name, whenUnset, separator) }
  }

  let missing = false
  const required = (setting: ProviderSetting): { name: string, value: string | undefined } => {
    const v = read(setting)
    if (v.value === undefined) { fail(v.name, whyRequired); missing = true }
    return v
  }
  const issuerVar = required('ISSUER')
  const clientId = required('CLIENT_ID')
  const clientSecret = required('CLIENT_SECRET')
  const redirectVar = required('REDIRECT_URI')
  const issuer = optionalUrl(issuerVar.name, issuerVar.value, ['http:', 'https:'], fail)
  if (issuer !== undefined && issuer.protocol === 'http:' && !isLoopbackHost(issuer.hostname)) {
    fail(issuerVar.name, 'must use https:// (http:// is accepted only for localhost, 127.0.0.0/8 and ::1)')
  }
  const redirectUri = optionalUrl(redirectVar.name, redirectVar.value, ['http:', 'https:'], fail)
  if (redirectUri !== undefined && redirectUri.pathname !== '/auth/oidc/callback') {
    fail(redirectVar.name, 'must end in /auth/oidc/callback, e.g. https://tt.example.com/auth/oidc/callback')
  }
  const postLogout = read('POST_LOGOUT_REDIRECT_URI')
  const postLogoutRedirectUri = optionalUrl(postLogout.name, postLogout.value, ['http:', 'https:'], fail)
  const scopeList = readList('SCOPES', ['openid', 'profile', 'email'], /\s+/)
  const scopes = scopeList.value.join(' ')
  if (!scopeList.value.includes('openid')) fail(scopeList.name, 'must include openid (space-separated, e.g. openid profile email)')
  const authMethod = read('CLIENT_AUTH_METHOD')
  const clientAuthMethod = oneOf(authMethod.name, authMethod.value ?? 'client_secret_post', ['client_secret_post', 'client_secret_basic'] as const, fail)
  const interval = read('REFRESH_INTERVAL')
  const refreshInterval = parseIntIn(interval.value ?? '300', 0, MAX_REFRESH_INTERVAL) ??
    fail(interval.name, `must be a whole number of seconds from 0 (off) to ${MAX_REFRESH_INTERVAL}, e.g. 300`)
  // The single provider's are the gateway-wide ALLOW_SELF_REGISTER and ALLOWED_* themselves.
  const ownSetting = (setting: ProviderSetting): string | undefined => names.own(setting) !== unprefixed(setting) && r.isSet(names.own(setting)) ? names.own(setting) : undefined
  const selfRegisterVar = ownSetting('ALLOW_SELF_REGISTER')
  const allowSelfRegister = selfRegisterVar === undefined ? defaults.allowSelfRegister : parseBool(selfRegisterVar, r.get(selfRegisterVar) ?? '', fail)
  const domainsVar = ownSetting('ALLOWED_EMAIL_DOMAINS')
  const emailsVar = ownSetting('ALLOWED_EMAILS')
  const groupsVar = ownSetting('ALLOWED_GROUPS')
  const shared = defaults.signInAllowList
  const signInAllowList = shared === undefined
    ? undefined
    : {
        emailDomains: domainsVar !== undefined ? parseEmailDomains(r, domainsVar) : shared.emailDomains,
        emails: emailsVar !== undefined ? parseEmails(r, emailsVar) : shared.emails,
        groups: groupsVar !== undefined ? r.getList(groupsVar) : shared.groups
      }
  const timeoutVar = read('TIMEOUT')
  const timeout = parseIntIn(timeoutVar.value ?? String(OIDC_TIMEOUT_DEFAULT), 1, MAX_OIDC_TIMEOUT) ??
    fail(timeoutVar.name, `must be a whole number of seconds from 1 to ${MAX_OIDC_TIMEOUT}, e.g. ${OIDC_TIMEOUT_DEFAULT}`)
  const buttonText = read('BUTTON_TEXT').value ?? (id === SINGLE_PROVIDER_ID ? 'Sign in with SSO' : `Sign in with ${id}`)
  if (missing || refreshInterval === undefined || timeout === undefined || issuer === undefined || redirectUri === undefined || clientAuthMethod === undefined ||
    allowSelfRegister === undefined || signInAllowList === undefined) return undefined
  return {
    id,
    readinessName,
    issuer,
    clientId: clientId.value!,
    clientSecret: clientSecret.value!,
    clientAuthMethod,
    redirectUri,
    scopes,
    usernameClaim: read('USERNAME_CLAIM').value ?? 'preferred_username',
    fullNameClaim: read('FULL_NAME_CLAIM').value ?? 'name',
    emailClaim: read('EMAIL_CLAIM').value ?? 'email',
    groupsClaim: read('GROUPS_CLAIM').value ?? 'groups',
    adminGroup: read('ADMIN_GROUP').value,
    adminEmails: readList('ADMIN_EMAILS').value.map((e) => e.toLowerCase()),
    postLogoutRedirectUri,
    buttonText,
    refreshInterval,
    signInAllowList,
    allowSelfRegister,
    timeout
  }
}

/**
 * OIDC_RATE_LIMIT: sign-in flows per minute one client address may start (and complete) through
 * the gateway, so that /login/oidc and the callback cannot be used to hammer the IdP; 0: no limit.
 */
export function parseOidcRateLimit (r: Reader): number | undefined {
  return parseIntIn(r.get('OIDC_RATE_LIMIT') ?? String(OIDC_RATE_LIMIT_DEFAULT), 0, 100_000) ??
    r.fail('OIDC_RATE_LIMIT', `must be a whole number of sign-ins per minute per client address (0 turns the limit off), e.g. ${OIDC_RATE_LIMIT_DEFAULT}`)
}
