// The demo OpenID Provider as a process of its own, for deploy/compose/docker-compose.demo-idp.yml.
// Development only, like everything under scripts/demo: fixed demo accounts with their passwords on
// the sign-in page, keys in memory. It reads the gateway's own settings, so one set of values
// (a YAML anchor in the override) configures both ends:
//
//   OIDC_ISSUER              the URL browsers and the gateway reach it at, e.g. http://127.0.0.1:9400
//   OIDC_CLIENT_ID           the client it registers (the gateway's)
//   OIDC_CLIENT_SECRET_FILE  the file holding that client's secret (or OIDC_CLIENT_SECRET)
//   PUBLIC_URL               the gateway's origin: the redirect URIs it allows are derived from it
//   DEMO_IDP_HOST            where it listens (default 127.0.0.1; 0.0.0.0 in a container); its port is the issuer's
import { readFileSync } from 'node:fs'
import { ADMIN_GROUP, startDemoIdp } from './idp.js'

function fail (message: string): never {
  process.stderr.write(`demo identity provider: cannot start: ${message}\n`)
  process.exit(2)
}

const env = process.env
if (env.NODE_ENV === 'production') fail('it is for development only and does not run with NODE_ENV=production (its accounts and passwords are public)')
const need = (name: string): string => env[name] !== undefined && env[name] !== '' ? env[name] : fail(`${name} is not set`)

const issuer = new URL(need('OIDC_ISSUER'))
const publicUrl = new URL(need('PUBLIC_URL'))
let clientSecret = env.OIDC_CLIENT_SECRET ?? ''
if (clientSecret === '') {
  const file = need('OIDC_CLIENT_SECRET_FILE')
  try {
    clientSecret = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    fail(`cannot read OIDC_CLIENT_SECRET_FILE ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}
if (clientSecret === '') fail('the client secret is empty')

const idp = await startDemoIdp({
  clientId: need('OIDC_CLIENT_ID'),
  clientSecret,
  redirectUri: new URL('/auth/oidc/callback', publicUrl).href,
  postLogoutRedirectUri: new URL('/login?signed_out=1', publicUrl).href
}, { host: env.DEMO_IDP_HOST ?? '127.0.0.1', port: issuer.port === '' ? 80 : Number(issuer.port), issuer: issuer.origin })

const rows = idp.accounts.map((a) => `  ${a.username.padEnd(6)} / ${a.password.padEnd(11)} groups: ${a.groups.join(', ')}${a.groups.includes(ADMIN_GROUP) ? ' (administrator)' : ''}`)
process.stdout.write(`demo identity provider (development only) at ${idp.issuer}, for ${publicUrl.origin}; accounts:\n${rows.join('\n')}\n`)

const stop = (): void => { void idp.close().then(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
