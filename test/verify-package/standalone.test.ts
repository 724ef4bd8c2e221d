// @authgate/verify installs on its own: packed from packages/verify, installed into an empty project
// (npm, install scripts allowed, as an upstream would), it brings jose and nothing else — no native
// build, none of the gateway's server dependencies — and there, in plain Node without tsx, it
// accepts the headers and assertion the gateway's own signer produces and refuses tampered ones.
import t from 'tap'
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { signIdentity } from '../../src/identity/headers.js'
import { AssertionSigner, jwksDocument } from '../../src/identity/jwt.js'

const run = promisify(execFile)
const ROOT = new URL('../../', import.meta.url).pathname
const PACKAGE_DIR = join(ROOT, 'packages/verify')
const SERVER_PACKAGES = ['better-sqlite3', 'fastify', 'pg', 'openid-client', 'kysely', 'undici', 'authgate']

// npm's lifecycle variables (npm_config_local_prefix and the like, set when this runs under
// `npm test`) would point the child npm at this repository: the child gets none of them.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)))
const npm = async (args: string[], cwd: string): Promise<string> =>
  (await run('npm', args, { cwd, env: { ...env, CI: 'true', npm_config_update_notifier: 'false' }, timeout: 170_000, maxBuffer: 16 << 20 })).stdout

const work = mkdtempSync(join(tmpdir(), 'authgate-verify-standalone-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })

/** Every directory under node_modules that is a package (scoped ones as @scope/name), recursively. */
function installedPackages (nodeModules: string): string[] {
  const found: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith('.')) continue
      const path = join(dir, entry)
      if (entry.startsWith('@')) { walk(path); continue }
      if (existsSync(join(path, 'package.json'))) found.push(relative(nodeModules, path))
      if (existsSync(join(path, 'node_modules'))) walk(join(path, 'node_modules'))
    }
  }
  walk(nodeModules)
  return found.sort()
}

function filesUnder (dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile())
}

t.test('packed, installed into an empty project, verifying what the gateway signs', async (t) => {
  // npm pack runs the package's prepack (its build), as a publish would.
  const packed = JSON.parse(await npm(['pack', PACKAGE_DIR, '--pack-destination', work, '--json', '--silent'], ROOT)) as Array<{ filename: string, files: Array<{ path: string }> }>
  const tarball = join(work, packed[0]!.filename)
  const shipped = packed[0]!.files.map((f) => f.path).sort()
  t.ok(shipped.includes('dist/index.js') && shipped.includes('dist/index.d.ts') && shipped.includes('README.md'), shipped.join(', '))
  t.same(shipped.filter((f) => !/^(dist\/\w+\.(js|d\.ts)|README\.md|package\.json)$/.test(f)), [], 'nothing but the build, README and package.json')

  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'an-upstream', version: '1.0.0', private: true, type: 'module' }))
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts=false', tarball], app)

  const nodeModules = join(app, 'node_modules')
  const packages = installedPackages(nodeModules)
  t.same(packages, ['@authgate/verify', 'jose'], 'the package and jose, nothing else')
  const files = filesUnder(nodeModules)
  t.same(files.filter((f) => /binding\.gyp$|\.node$/.test(f)), [], 'no native build')
  for (const name of packages) {
    const manifest = JSON.parse(readFileSync(join(nodeModules, name, 'package.json'), 'utf8')) as { scripts?: Record<string, string>, gypfile?: boolean }
    t.same(Object.keys(manifest.scripts ?? {}).filter((s) => /^(pre|post)?install$/.test(s)), [], `${name}: no install scripts`)
    t.notOk(manifest.gypfile, `${name}: no gypfile`)
  }
  for (const name of SERVER_PACKAGES) t.notOk(existsSync(join(nodeModules, name)), `no ${name}`)
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> }
  t.same(Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript === true), [], 'no package with an install script in the lockfile')
  const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0)
  t.comment(`installed: ${packages.join(', ')}; ${files.length} files, ${(bytes / 1024).toFixed(0)} KiB`)
  t.ok(bytes < 2 << 20, `small: ${bytes} bytes`)

  // What the gateway sends, made by its real signer; the JWKS served as /_authgate/jwks.json serves it.
  const secret = 'a-header-signing-secret-of-at-least-32-characters'
  const privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const issuer = 'https://gw.example.com'
  const audience = 'http://127.0.0.1:5000'
  const identity = { username: 'zoë', isAdmin: true, email: 'z@example.com', fullName: null, groups: ['staff', 'a,b'] }
  const now = Math.floor(Date.now() / 1000)
  const signer = await AssertionSigner.create({ privateKey, issuer, audience })
  const headers = { ...signIdentity(identity, secret, now), 'x-identity-assertion': await signer.assertionFor(identity, { uid: 42, iat: now, exp: now + 3600 }, now) }
  const jwks = JSON.stringify(await jwksDocument(privateKey, []))
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_authgate/jwks.json`

  // Plain Node in the new project: the package's own dist, resolved through its exports.
  writeFileSync(join(app, 'check.mjs'), `
import { createRequestVerifier, RemoteJwks, verifyIdentityAssertion, verifyIdentityHeaders } from '@authgate/verify'
const { secret, headers, jwksUrl, issuer, audience } = JSON.parse(process.argv[2])
const reason = (r) => r.ok ? 'ok' : r.reason
const keys = new RemoteJwks(jwksUrl)
const token = headers['x-identity-assertion']
const [h, p, s] = token.split('.')
const claims = JSON.parse(Buffer.from(p, 'base64url').toString())
const forged = h + '.' + Buffer.from(JSON.stringify({ ...claims, preferred_username: 'root' })).toString('base64url') + '.' + s
const both = createRequestVerifier({ secret, assertion: { jwks: keys, issuer, audience } })
const request = await both(headers)
console.log(JSON.stringify({
  headers: verifyIdentityHeaders(headers, secret),
  tamperedHeaders: reason(verifyIdentityHeaders({ ...headers, 'x-admin': 'false' }, secret)),
  otherSecret: reason(verifyIdentityHeaders(headers, 'another-secret-of-at-least-32-characters!')),
  assertion: await verifyIdentityAssertion(token, keys, { issuer, audience }),
  tamperedAssertion: reason(await verifyIdentityAssertion(forged, keys, { issuer, audience })),
  otherAudience: reason(await verifyIdentityAssertion(token, keys, { issuer, audience: 'http://other-app' })),
  request: request.ok ? request.identity.username : request.reason,
  mismatch: reason(await both({ ...headers, 'x-identity-assertion': forged }))
}))
`)
  const { stdout } = await run(process.execPath, ['check.mjs', JSON.stringify({ secret, headers, jwksUrl, issuer, audience })], { cwd: app, env, timeout: 30_000 })
  const out = JSON.parse(stdout) as Record<string, unknown>
  t.match(out.headers, { ok: true, identity: { ...identity, timestamp: now } }, 'the signed headers verify')
  t.equal(out.tamperedHeaders, 'bad-signature')
  t.equal(out.otherSecret, 'bad-signature')
  t.match(out.assertion, { ok: true, assertion: { username: 'zoë', isAdmin: true, email: 'z@example.com', fullName: null, groups: ['staff', 'a,b'], subject: '42' } }, 'the assertion verifies with the fetched JWKS')
  t.equal(out.tamperedAssertion, 'bad-signature')
  t.equal(out.otherAudience, 'wrong-audience')
  t.equal(out.request, 'zoë', 'both checks together')
  t.equal(out.mismatch, 'bad-signature')
})
