import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/index.js'
import { configWarnings } from '../../src/config/warnings.js'
import { configRefusal } from '../support/config.js'

const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const cwd = (): string => mkdtempSync(join(tmpdir(), 'authgate-access-'))
const load = (env: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({ ...secrets, ...env }, { cwd: cwd(), dotenv: false })
const messages = (env: Record<string, string>): string[] => configRefusal({ ...secrets, ...env }, cwd())

t.test('unset: no allow-list, no rules', async (t) => {
  const c = load({})
  t.same(c.signInAllowList, { emailDomains: [], emails: [], groups: [] })
  t.same(c.accessRules, [])
})

t.test('allow-lists are read as lists, emails and domains lower-cased, groups as written', async (t) => {
  const c = load({ ALLOWED_EMAIL_DOMAINS: 'Example.COM, @corp.example', ALLOWED_EMAILS: 'Partner@Other.Test', ALLOWED_GROUPS: 'Staff, On Call' })
  t.same(c.signInAllowList, { emailDomains: ['example.com', 'corp.example'], emails: ['partner@other.test'], groups: ['Staff', 'On Call'] })
  t.match(messages({ ALLOWED_EMAIL_DOMAINS: 'example.com,*.example.org' }), [/^ALLOWED_EMAIL_DOMAINS: "\*\.example\.org" is not a domain name/])
  t.match(messages({ ALLOWED_EMAILS: 'a@b@c' }), [/^ALLOWED_EMAILS: "a@b@c" is not an email address/])
})

t.test('ACCESS_RULES: compiled at startup, every bad rule named', async (t) => {
  t.same(load({ ACCESS_RULES: '/admin=admin' }).accessRules.map((r) => r.path), ['/admin'])
  const problems = messages({ ACCESS_RULES: '/admin=superuser; reports=admin; /ok=group:x; /x=' })
  t.equal(problems.length, 3, 'one message per bad rule')
  for (const p of problems) t.match(p, /^ACCESS_RULES: "/)
  t.match(problems.join('\n'), /unknown requirement "superuser"/)
})

t.test('a rule on a path that skips sign-in is a startup error', async (t) => {
  t.match(messages({ SKIP_AUTH_PATHS: '/static/', ACCESS_RULES: '/static/private=admin' }), [/^ACCESS_RULES: the rule for \/static\/private can never apply/])
  t.same(messages({ SKIP_AUTH_PATHS: '/static/', ACCESS_RULES: '/=group:staff' }), [], 'a rule above a skipped prefix is fine: the skip wins below it')
})

t.test('settings that cannot do what they say are warned about', async (t) => {
  const warnings = (env: Record<string, string>): string => configWarnings(load(env)).map((w) => w.message).join('\n')
  t.match(warnings({ ALLOWED_GROUPS: 'staff' }), /apply to single sign-on only, and AUTH_METHOD=local/)
  t.notMatch(warnings({ AUTH_METHOD: 'both', ALLOWED_GROUPS: 'staff', OIDC_ISSUER: 'http://127.0.0.1:9/', OIDC_CLIENT_ID: 'c', OIDC_CLIENT_SECRET: 'x', OIDC_REDIRECT_URI: 'http://127.0.0.1:8080/auth/oidc/callback' }), /single sign-on only/)
  t.match(warnings({ ACCESS_RULES: '/admin=user:root' }), /user: requirements protect nothing/)
  t.notMatch(warnings({ ACCESS_RULES: '/admin=user:root', LOCAL_AUTH: 'password' }), /user: requirements/)
})
