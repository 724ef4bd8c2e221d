// Several identity providers (OIDC_PROVIDERS, docs/PROTOCOL.md#several-identity-providers): each
// provider's own OIDC_<ID>_* variables over the shared defaults, every refusal naming the variable to
// fix, and the single-provider configuration exactly as it was without OIDC_PROVIDERS.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, type Config, type ConfigProblem, type Env } from '../../src/config/index.js'
import { configWarnings } from '../../src/config/warnings.js'

const dir = (): string => mkdtempSync(join(tmpdir(), 'authgate-providers-'))
const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const CALLBACK = 'https://tt.example.com/auth/oidc/callback'

/** Two providers, each with only what it must have: the rest comes from the shared defaults. */
const two: Env = {
  ...secrets,
  AUTH_METHOD: 'both',
  OIDC_PROVIDERS: 'corp,partner',
  OIDC_REDIRECT_URI: CALLBACK,
  OIDC_CORP_ISSUER: 'https://sso.corp.example.com/realms/staff',
  OIDC_CORP_CLIENT_ID: 'tt-corp',
  OIDC_CORP_CLIENT_SECRET: 'corp-secret',
  OIDC_PARTNER_ISSUER: 'https://login.partner.example.org/tenant/v2.0',
  OIDC_PARTNER_CLIENT_ID: 'tt-partner',
  OIDC_PARTNER_CLIENT_SECRET: 'partner-secret'
}

const load = (env: Env, cwd = dir()): Config => loadConfig(env, { cwd, dotenv: false })

function problemsOf (env: Env, cwd = dir()): ConfigProblem[] {
  try {
    load(env, cwd)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

const names = (env: Env): string[] => problemsOf(env).map((p) => p.name)
const without = (env: Env, ...drop: string[]): Env => Object.fromEntries(Object.entries(env).filter(([name]) => !drop.includes(name)))
const provider = (c: Config, id: string): NonNullable<Config['oidc']> => {
  const p = c.oidcProviders.find((o) => o.id === id)
  if (p === undefined) throw new Error(`no provider ${id}`)
  return p
}

t.test('two providers: each its own issuer and client, in the listed order, with the built-in defaults', async (t) => {
  const c = load(two)
  t.same(c.oidcProviders.map((p) => p.id), ['corp', 'partner'])
  t.equal(c.multipleProviders, true)
  t.equal(c.oidc, c.oidcProviders[0], 'config.oidc is the first provider')
  t.same(c.oidcProviders.map((p) => p.readinessName), ['oidc:corp', 'oidc:partner'])
  const corp = provider(c, 'corp')
  const partner = provider(c, 'partner')
  t.equal(corp.issuer.href, 'https://sso.corp.example.com/realms/staff')
  t.equal(partner.issuer.href, 'https://login.partner.example.org/tenant/v2.0')
  t.same([corp.clientId, corp.clientSecret, partner.clientId, partner.clientSecret], ['tt-corp', 'corp-secret', 'tt-partner', 'partner-secret'])
  t.same(c.oidcProviders.map((p) => p.buttonText), ['Sign in with corp', 'Sign in with partner'], 'the default button names the id')
  for (const p of [corp, partner]) {
    t.equal(p.redirectUri.href, CALLBACK, `${p.id}: the shared redirect URI`)
    t.equal(p.scopes, 'openid profile email')
    t.same([p.usernameClaim, p.fullNameClaim, p.emailClaim, p.groupsClaim], ['preferred_username', 'name', 'email', 'groups'])
    t.equal(p.clientAuthMethod, 'client_secret_post')
    t.equal(p.refreshInterval, 300)
    t.equal(p.adminGroup, undefined)
    t.same(p.adminEmails, [])
    t.equal(p.postLogoutRedirectUri, undefined)
    t.equal(p.allowSelfRegister, true)
    t.same(p.signInAllowList, { emailDomains: [], emails: [], groups: [] })
  }
  t.same(c.unknownVariables, [], 'every variable of a listed provider is known')
})

t.test('without OIDC_PROVIDERS: the one provider of the unprefixed variables, as before', async (t) => {
  const c = load({ ...secrets, AUTH_METHOD: 'both', OIDC_ISSUER: 'https://idp.example.com', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 's', OIDC_REDIRECT_URI: CALLBACK })
  t.equal(c.multipleProviders, false)
  t.equal(c.oidcProviders.length, 1)
  t.equal(c.oidc, c.oidcProviders[0])
  t.equal(c.oidc?.id, 'sso')
  t.equal(c.oidc?.readinessName, 'oidc')
  t.equal(c.oidc?.buttonText, 'Sign in with SSO')
  t.equal(c.oidc?.issuer.href, 'https://idp.example.com/')
  const local = load({ ...secrets, OIDC_PROVIDERS: 'corp' })
  t.same([local.oidcProviders, local.oidc, local.multipleProviders], [[], undefined, false], 'AUTH_METHOD=local: no provider at all')
})

t.test('an id with "-": its variables use "_" (corp-sso → OIDC_CORP_SSO_ISSUER)', async (t) => {
  const env: Env = {
    ...secrets,
    AUTH_METHOD: 'oidc',
    OIDC_PROVIDERS: 'corp-sso',
    OIDC_CORP_SSO_ISSUER: 'https://sso.corp.example.com',
    OIDC_CORP_SSO_CLIENT_ID: 'tt',
    OIDC_CORP_SSO_CLIENT_SECRET: 'x',
    OIDC_CORP_SSO_REDIRECT_URI: CALLBACK,
    OIDC_CORP_SSO_BUTTON_TEXT: 'Staff sign-in'
  }
  const c = load(env)
  t.same(c.oidcProviders.map((p) => [p.id, p.readinessName, p.buttonText, p.issuer.host]), [['corp-sso', 'oidc:corp-sso', 'Staff sign-in', 'sso.corp.example.com']])
  t.equal(c.multipleProviders, true, 'one provider listed in OIDC_PROVIDERS is still named')
  t.same(problemsOf(without(env, 'OIDC_CORP_SSO_ISSUER')).map((p) => `${p.name}: ${p.message}`), ['OIDC_CORP_SSO_ISSUER: is required for provider corp-sso (listed in OIDC_PROVIDERS)'])
})

t.test('a missing issuer, client id or secret names the provider\'s own variable', async (t) => {
  for (const name of ['OIDC_PARTNER_ISSUER', 'OIDC_PARTNER_CLIENT_ID', 'OIDC_PARTNER_CLIENT_SECRET']) {
    t.same(problemsOf(without(two, name)), [{ name, message: 'is required for provider partner (listed in OIDC_PROVIDERS)' }], name)
  }
  t.same(names(without(two, 'OIDC_CORP_ISSUER', 'OIDC_CORP_CLIENT_ID', 'OIDC_CORP_CLIENT_SECRET', 'OIDC_PARTNER_CLIENT_SECRET')).sort(),
    ['OIDC_CORP_CLIENT_ID', 'OIDC_CORP_CLIENT_SECRET', 'OIDC_CORP_ISSUER', 'OIDC_PARTNER_CLIENT_SECRET'], 'all of them at once')
  // The redirect URI may be shared: without either, the shared one is asked for, for each provider.
  t.same(problemsOf(without(two, 'OIDC_REDIRECT_URI')), [
    { name: 'OIDC_REDIRECT_URI', message: 'is required for provider corp (listed in OIDC_PROVIDERS)' },
    { name: 'OIDC_REDIRECT_URI', message: 'is required for provider partner (listed in OIDC_PROVIDERS)' }
  ])
  t.same(names({ ...without(two, 'OIDC_REDIRECT_URI'), OIDC_CORP_REDIRECT_URI: CALLBACK }), ['OIDC_REDIRECT_URI'], 'only the provider without its own')
  t.same(names({ ...two, OIDC_PARTNER_ISSUER: '' }), ['OIDC_PARTNER_ISSUER'], 'empty is missing')
})

t.test('OIDC_PROVIDERS: bad ids, repeats, an empty list and too many are refused, naming it', async (t) => {
  const refusal = (list: string): string[] => problemsOf({ ...two, OIDC_PROVIDERS: list }).map((p) => `${p.name}: ${p.message}`)
  t.same(refusal('corp,Corp'), ['OIDC_PROVIDERS: "Corp" is not a provider id: use lower-case letters, digits and "-" (at most 32), e.g. corp,partner'])
  t.same(refusal('corp,a_b'), ['OIDC_PROVIDERS: "a_b" is not a provider id: use lower-case letters, digits and "-" (at most 32), e.g. corp,partner'])
  t.same(refusal('corp,' + 'x'.repeat(33)), [`OIDC_PROVIDERS: "${'x'.repeat(33)}" is not a provider id: use lower-case letters, digits and "-" (at most 32), e.g. corp,partner`])
  t.same(names({ ...two, OIDC_PROVIDERS: 'corp,' + 'x'.repeat(32) }).sort(), ['OIDC_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX_CLIENT_ID', 'OIDC_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX_CLIENT_SECRET', 'OIDC_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX_ISSUER'],
    '32 characters is an id (whose variables are then missing)')
  t.same(refusal('corp,partner,corp'), ['OIDC_PROVIDERS: lists "corp" twice; each provider once'])
  for (const empty of ['', ' ', ' , ,']) {
    t.same(refusal(empty), ['OIDC_PROVIDERS: lists no provider; list provider ids such as corp,partner, or leave it unset to use OIDC_ISSUER alone'],
      `${JSON.stringify(empty)}: the empty list (docs/PROTOCOL.md#list-variables), not the single provider`)
  }
  const seventeen = Array.from({ length: 17 }, (_, i) => `p${i}`)
  t.same(refusal(seventeen.join(',')), ['OIDC_PROVIDERS: lists 17 providers; at most 16'])
  const sixteen: Env = { ...secrets, AUTH_METHOD: 'oidc', OIDC_REDIRECT_URI: CALLBACK, OIDC_PROVIDERS: seventeen.slice(0, 16).join(',') }
  for (const id of seventeen.slice(0, 16)) Object.assign(sixteen, { [`OIDC_${id.toUpperCase()}_ISSUER`]: `https://${id}.example.com`, [`OIDC_${id.toUpperCase()}_CLIENT_ID`]: 'c', [`OIDC_${id.toUpperCase()}_CLIENT_SECRET`]: 's' })
  t.equal(load(sixteen).oidcProviders.length, 16, 'sixteen is allowed')
})

t.test('an id whose variables would read as a shared setting\'s, or as another provider\'s, is refused', async (t) => {
  const refusal = (list: string): string[] => problemsOf({ ...two, OIDC_PROVIDERS: list }).map((p) => `${p.name}: ${p.message}`)
  t.same(refusal('corp,client'), ['OIDC_PROVIDERS: "client" cannot be a provider id: its variables (OIDC_CLIENT_…) would be confused with the shared setting OIDC_CLIENT_ID; choose another id'])
  for (const [id, shared] of [['admin', 'OIDC_ADMIN_GROUP'], ['post-logout', 'OIDC_POST_LOGOUT_REDIRECT_URI'], ['email', 'OIDC_EMAIL_CLAIM'], ['groups', 'OIDC_GROUPS_CLAIM'], ['button', 'OIDC_BUTTON_TEXT']] as const) {
    const said = refusal(`corp,${id}`)
    t.equal(said.length, 1, id)
    t.match(said[0], `"${id}" cannot be a provider id`, id)
    t.match(said[0], shared, `${id}: names ${shared}`)
  }
  t.same(refusal('corp,corp-post-logout'), ['OIDC_PROVIDERS: "corp" and "corp-post-logout" cannot both be provider ids: OIDC_CORP_POST_LOGOUT_REDIRECT_URI would be a variable of both; choose another id'])
  t.same(names({ ...two, OIDC_PROVIDERS: 'corp,corp-sso', OIDC_CORP_SSO_ISSUER: 'https://sso.example.com', OIDC_CORP_SSO_CLIENT_ID: 'c', OIDC_CORP_SSO_CLIENT_SECRET: 's' }), [],
    'corp and corp-sso share no variable: both are fine')
})

t.test('two providers with one issuer are refused (the mix-up defence tells them apart by issuer)', async (t) => {
  const same = { ...two, OIDC_PARTNER_ISSUER: two.OIDC_CORP_ISSUER! }
  t.same(problemsOf(same), [{ name: 'OIDC_PARTNER_ISSUER', message: 'is the issuer of provider corp too; each provider needs its own issuer' }])
  t.same(names({ ...two, OIDC_PARTNER_ISSUER: two.OIDC_CORP_ISSUER! + '/' }), ['OIDC_PARTNER_ISSUER'], 'a trailing slash does not make another issuer')
  t.same(names({ ...two, OIDC_PARTNER_ISSUER: 'https://sso.corp.example.com/realms/partners' }), [], 'another realm at the same host is another issuer')
})

t.test('the unprefixed issuer and client are refused with OIDC_PROVIDERS, naming what to set instead', async (t) => {
  const cwd = dir()
  writeFileSync(join(cwd, 'secret'), 'from-a-file\n')
  for (const [name, value] of [['OIDC_ISSUER', 'https://idp.example.com'], ['OIDC_CLIENT_ID', 'c'], ['OIDC_CLIENT_SECRET', 's'], ['OIDC_CLIENT_SECRET_FILE', 'secret']] as const) {
    const setting = name.slice('OIDC_'.length).replace(/_FILE$/, '')
    t.same(problemsOf({ ...two, [name]: value }, cwd), [{ name, message: `is not used when OIDC_PROVIDERS is set; set OIDC_CORP_${setting}, OIDC_PARTNER_${setting} instead` }], name)
  }
})

t.test('bad values of a provider\'s own variables name them', async (t) => {
  t.same(problemsOf({ ...two, OIDC_PARTNER_REDIRECT_URI: 'https://tt.example.com/callback' }), [{ name: 'OIDC_PARTNER_REDIRECT_URI', message: 'must end in /auth/oidc/callback, e.g. https://tt.example.com/auth/oidc/callback' }])
  t.same(problemsOf({ ...two, OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS: 'partner.example.org,@bad domain' }), [{ name: 'OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS', message: '"bad domain" is not a domain name; list domains such as example.com (exact: subdomains are not included)' }])
  t.same(names({ ...two, OIDC_PARTNER_ALLOWED_EMAILS: 'not-an-address' }), ['OIDC_PARTNER_ALLOWED_EMAILS'])
  t.same(problemsOf({ ...two, OIDC_PARTNER_ISSUER: 'http://login.partner.example.org' }), [{ name: 'OIDC_PARTNER_ISSUER', message: 'must use https:// (http:// is accepted only for localhost, 127.0.0.0/8 and ::1)' }])
  t.same(names({ ...two, OIDC_PARTNER_ISSUER: 'http://127.0.0.1:9000' }), [], 'http:// on loopback, as for OIDC_ISSUER')
  t.same(names({ ...two, OIDC_CORP_SCOPES: 'profile email' }), ['OIDC_CORP_SCOPES'], 'openid is required')
  t.same(names({ ...two, OIDC_CORP_CLIENT_AUTH_METHOD: 'private_key_jwt' }), ['OIDC_CORP_CLIENT_AUTH_METHOD'])
  t.same(names({ ...two, OIDC_CORP_REFRESH_INTERVAL: '86401' }), ['OIDC_CORP_REFRESH_INTERVAL'])
  t.same(names({ ...two, OIDC_PARTNER_ALLOW_SELF_REGISTER: 'maybe' }), ['OIDC_PARTNER_ALLOW_SELF_REGISTER'])
  // A bad shared default is blamed on the shared variable, for each provider that inherits it.
  t.same(names({ ...two, OIDC_REDIRECT_URI: 'https://tt.example.com/cb' }), ['OIDC_REDIRECT_URI', 'OIDC_REDIRECT_URI'])
  t.same(names({ ...two, OIDC_REDIRECT_URI: 'https://tt.example.com/cb', OIDC_CORP_REDIRECT_URI: CALLBACK, OIDC_PARTNER_REDIRECT_URI: CALLBACK }), [], 'unless every provider has its own')
})

t.test('the unprefixed settings are every provider\'s defaults; a provider\'s own wins', async (t) => {
  const shared: Env = {
    ...two,
    OIDC_SCOPES: 'openid profile email groups',
    OIDC_USERNAME_CLAIM: 'email',
    OIDC_GROUPS_CLAIM: 'roles',
    OIDC_ADMIN_GROUP: 'tt-admins',
    OIDC_ADMIN_EMAILS: 'boss@corp.example.com',
    OIDC_BUTTON_TEXT: 'Sign in',
    OIDC_REFRESH_INTERVAL: '60',
    OIDC_CLIENT_AUTH_METHOD: 'client_secret_basic',
    OIDC_POST_LOGOUT_REDIRECT_URI: 'https://tt.example.com/login?signed_out=1',
    ALLOWED_GROUPS: 'staff',
    ALLOWED_EMAIL_DOMAINS: 'corp.example.com',
    ALLOW_SELF_REGISTER: 'false'
  }
  const inherited = load(shared)
  for (const p of inherited.oidcProviders) {
    t.equal(p.scopes, 'openid profile email groups', `${p.id}: OIDC_SCOPES`)
    t.equal(p.usernameClaim, 'email', `${p.id}: OIDC_USERNAME_CLAIM`)
    t.equal(p.groupsClaim, 'roles')
    t.equal(p.adminGroup, 'tt-admins', `${p.id}: OIDC_ADMIN_GROUP`)
    t.same(p.adminEmails, ['boss@corp.example.com'])
    t.equal(p.buttonText, 'Sign in')
    t.equal(p.refreshInterval, 60)
    t.equal(p.clientAuthMethod, 'client_secret_basic')
    t.equal(p.postLogoutRedirectUri?.href, 'https://tt.example.com/login?signed_out=1')
    t.same(p.signInAllowList, { emailDomains: ['corp.example.com'], emails: [], groups: ['staff'] }, `${p.id}: ALLOWED_*`)
    t.equal(p.allowSelfRegister, false, `${p.id}: ALLOW_SELF_REGISTER`)
  }

  const own = load({
    ...shared,
    OIDC_PARTNER_SCOPES: 'openid email',
    OIDC_PARTNER_USERNAME_CLAIM: 'upn',
    OIDC_PARTNER_ADMIN_GROUP: 'partner-admins',
    OIDC_PARTNER_ADMIN_EMAILS: 'Chief@Partner.example.org',
    OIDC_PARTNER_BUTTON_TEXT: 'Partner sign-in',
    OIDC_PARTNER_REDIRECT_URI: 'https://partners.tt.example.com/auth/oidc/callback',
    OIDC_PARTNER_POST_LOGOUT_REDIRECT_URI: 'https://partners.tt.example.com/login?signed_out=1',
    OIDC_PARTNER_REFRESH_INTERVAL: '0',
    OIDC_PARTNER_CLIENT_AUTH_METHOD: 'client_secret_post',
    OIDC_PARTNER_ALLOWED_GROUPS: 'tt-users',
    OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS: 'Partner.example.org',
    OIDC_PARTNER_ALLOWED_EMAILS: 'Guest@Elsewhere.example',
    OIDC_PARTNER_ALLOW_SELF_REGISTER: 'true'
  })
  const partner = provider(own, 'partner')
  t.equal(partner.scopes, 'openid email')
  t.equal(partner.usernameClaim, 'upn')
  t.equal(partner.adminGroup, 'partner-admins')
  t.same(partner.adminEmails, ['chief@partner.example.org'], 'lower-cased, as OIDC_ADMIN_EMAILS')
  t.equal(partner.buttonText, 'Partner sign-in')
  t.equal(partner.redirectUri.host, 'partners.tt.example.com')
  t.equal(partner.postLogoutRedirectUri?.host, 'partners.tt.example.com')
  t.equal(partner.refreshInterval, 0)
  t.equal(partner.clientAuthMethod, 'client_secret_post')
  t.same(partner.signInAllowList, { emailDomains: ['partner.example.org'], emails: ['guest@elsewhere.example'], groups: ['tt-users'] })
  t.equal(partner.allowSelfRegister, true)
  const corp = provider(own, 'corp')
  t.same([corp.scopes, corp.adminGroup, corp.buttonText, corp.allowSelfRegister, corp.signInAllowList.groups], ['openid profile email groups', 'tt-admins', 'Sign in', false, ['staff']],
    'the other provider keeps the shared defaults')
  t.same(own.signInAllowList, { emailDomains: ['corp.example.com'], emails: [], groups: ['staff'] }, 'the gateway-wide lists are unchanged')
  t.equal(own.allowSelfRegister, false)
})

t.test('a provider\'s own variable set to empty overrides the shared default', async (t) => {
  const shared: Env = { ...two, OIDC_ADMIN_EMAILS: 'boss@corp.example.com', OIDC_ADMIN_GROUP: 'tt-admins', ALLOWED_GROUPS: 'staff', ALLOWED_EMAIL_DOMAINS: 'corp.example.com', ALLOWED_EMAILS: 'x@corp.example.com', OIDC_BUTTON_TEXT: 'Sign in', OIDC_USERNAME_CLAIM: 'email' }
  const c = load({
    ...shared,
    OIDC_PARTNER_ADMIN_EMAILS: '',
    OIDC_PARTNER_ADMIN_GROUP: '',
    OIDC_PARTNER_ALLOWED_GROUPS: '',
    OIDC_PARTNER_ALLOWED_EMAIL_DOMAINS: ' , ',
    OIDC_PARTNER_ALLOWED_EMAILS: '',
    OIDC_PARTNER_BUTTON_TEXT: '',
    OIDC_PARTNER_USERNAME_CLAIM: ''
  })
  const partner = provider(c, 'partner')
  t.same(partner.adminEmails, [], 'OIDC_PARTNER_ADMIN_EMAILS=: nobody is admin by email at partner')
  t.equal(partner.adminGroup, undefined, 'OIDC_PARTNER_ADMIN_GROUP=: no admin group at partner, never the staff\'s')
  t.same(partner.signInAllowList, { emailDomains: [], emails: [], groups: [] }, 'empty allow-lists: everyone partner vouches for')
  t.equal(partner.buttonText, 'Sign in with partner', 'empty: the built-in default, not the shared text')
  t.equal(partner.usernameClaim, 'preferred_username')
  const corp = provider(c, 'corp')
  t.same([corp.adminEmails, corp.adminGroup, corp.signInAllowList.groups, corp.buttonText], [['boss@corp.example.com'], 'tt-admins', ['staff'], 'Sign in'], 'corp keeps the shared ones')
  t.same(names({ ...two, OIDC_PARTNER_SCOPES: '' }), ['OIDC_PARTNER_SCOPES'], 'empty scopes lack openid: refused, not the shared default')
  t.same(names({ ...two, OIDC_PARTNER_REDIRECT_URI: '' }), ['OIDC_PARTNER_REDIRECT_URI'], 'an empty own redirect URI is missing, not the shared one')
})

t.test('OIDC_<ID>_CLIENT_SECRET_FILE: the secret from a file; both set is refused', async (t) => {
  const cwd = dir()
  writeFileSync(join(cwd, 'partner-secret'), 'partner-secret-from-file\n')
  const env = { ...without(two, 'OIDC_PARTNER_CLIENT_SECRET'), OIDC_PARTNER_CLIENT_SECRET_FILE: 'partner-secret' }
  const c = load(env, cwd)
  t.equal(provider(c, 'partner').clientSecret, 'partner-secret-from-file', 'read relative to the working directory, trailing newline dropped')
  t.same(c.unknownVariables, [], 'OIDC_PARTNER_CLIENT_SECRET_FILE is not taken for a typo')
  t.same(problemsOf({ ...env, OIDC_PARTNER_CLIENT_SECRET: 'x' }, cwd), [{ name: 'OIDC_PARTNER_CLIENT_SECRET_FILE', message: 'set together with OIDC_PARTNER_CLIENT_SECRET; set only one of them' }])
  t.same(names({ ...env, OIDC_PARTNER_CLIENT_SECRET_FILE: 'missing' }), ['OIDC_PARTNER_CLIENT_SECRET_FILE', 'OIDC_PARTNER_CLIENT_SECRET'],
    'an unreadable file, and so no secret')
})

t.test('a misspelt provider variable, or one of a provider not listed, is reported as unknown', async (t) => {
  const c = load({ ...two, OIDC_CORP_ISUER: 'https://sso.corp.example.com', OIDC_OTHER_ISSUER: 'https://other.example.com', OIDC_PARTNER_BUTON_TEXT: 'Partners' })
  t.same(c.unknownVariables.find((u) => u.name === 'OIDC_CORP_ISUER'), { name: 'OIDC_CORP_ISUER', didYouMean: 'OIDC_CORP_ISSUER' })
  t.same(c.unknownVariables.find((u) => u.name === 'OIDC_PARTNER_BUTON_TEXT'), { name: 'OIDC_PARTNER_BUTON_TEXT', didYouMean: 'OIDC_PARTNER_BUTTON_TEXT' })
  t.ok(c.unknownVariables.some((u) => u.name === 'OIDC_OTHER_ISSUER'), 'a provider not in OIDC_PROVIDERS')
  t.same(c.unknownVariables.map((u) => u.name), ['OIDC_CORP_ISUER', 'OIDC_OTHER_ISSUER', 'OIDC_PARTNER_BUTON_TEXT'], 'and nothing else')
  const cwd = dir()
  writeFileSync(join(cwd, 's'), 'x')
  t.ok(load({ ...two, OIDC_OTHER_CLIENT_SECRET_FILE: 's' }, cwd).unknownVariables.some((u) => u.name === 'OIDC_OTHER_CLIENT_SECRET_FILE'), 'nor the secret file of a provider not listed')
})

t.test('ADMIN_USERNAMES with several providers is warned about: any of them could name someone admin', async (t) => {
  const adminWarning = (env: Env): string | undefined => configWarnings(load(env)).map((w) => w.message).find((m) => m.startsWith('ADMIN_USERNAMES'))
  t.match(adminWarning(two), /ADMIN_USERNAMES \(admin\) applies to every provider in OIDC_PROVIDERS/, 'the default list')
  t.match(adminWarning({ ...two, ADMIN_USERNAMES: 'root,boss' }), /\(root, boss\)/)
  t.equal(adminWarning({ ...two, ADMIN_USERNAMES: '' }), undefined, 'none with an empty list')
  const single = { ...secrets, AUTH_METHOD: 'oidc', OIDC_ISSUER: 'https://sso.corp.example.com/realms/staff', OIDC_CLIENT_ID: 'tt', OIDC_CLIENT_SECRET: 'x', OIDC_REDIRECT_URI: CALLBACK }
  t.equal(adminWarning(single), undefined, 'none with one provider: its own IdP decides who is called admin')
})
