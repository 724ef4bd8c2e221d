// The development banner's sign-in line: where single sign-on goes, every provider of OIDC_PROVIDERS
// named, not just the first.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Env } from '../../src/config/index.js'
import { startupBanner } from '../../src/banner.js'

const base = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32), AUTH_METHOD: 'oidc', OIDC_REDIRECT_URI: 'https://tt.example.com/auth/oidc/callback' }
const signInLine = (env: Env): string | undefined => {
  const config = loadConfig({ ...base, ...env }, { cwd: mkdtempSync(join(tmpdir(), 'authgate-banner-')), dotenv: false, writeDevSecrets: false })
  return /Sign-in: +(.*)/.exec(startupBanner(config, { url: 'http://localhost:8080', upstream: new URL('http://127.0.0.1:5000/'), demo: false }))?.[1]
}

t.test('one provider: its issuer\'s origin', async (t) => {
  t.equal(signInLine({ OIDC_ISSUER: 'https://idp.example.com/realms/x', OIDC_CLIENT_ID: 'tt', OIDC_CLIENT_SECRET: 'c' }), 'single sign-on at https://idp.example.com')
})

t.test('OIDC_PROVIDERS: each provider, by id, in order', async (t) => {
  t.equal(signInLine({
    OIDC_PROVIDERS: 'corp,partner',
    OIDC_CORP_ISSUER: 'https://sso.corp.example.com/realms/staff',
    OIDC_CORP_CLIENT_ID: 'tt',
    OIDC_CORP_CLIENT_SECRET: 'c',
    OIDC_PARTNER_ISSUER: 'https://login.partner.example.org/tenant/v2.0',
    OIDC_PARTNER_CLIENT_ID: 'tt',
    OIDC_PARTNER_CLIENT_SECRET: 'p'
  }), 'single sign-on at https://sso.corp.example.com (corp), https://login.partner.example.org (partner)')
})
