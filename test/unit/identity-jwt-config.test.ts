import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Env } from '../../src/config/index.js'
import { jwkThumbprint, publicJwk } from '../../src/identity/jwt.js'
import { configProblems } from '../support/config.js'

const base: Env = {
  SECRET_KEY: 'test-secret-key-0123456789abcdefghijklmnop',
  HEADER_SIGNING_SECRET: 'test-header-signing-secret-0123456789abcdef',
  UPSTREAM_URL: 'http://127.0.0.1:5000',
  PUBLIC_URL: 'https://tt.example.com',
  IDENTITY_JWT: 'true'
}
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const pkcs8 = ec.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const sec1 = ec.privateKey.export({ format: 'pem', type: 'sec1' }).toString()

function dir (t: { teardown: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'authgate-jwtcfg-'))
  t.teardown(() => { rmSync(d, { recursive: true, force: true }) })
  return d
}

const problems = configProblems

t.test('off by default', async (t) => {
  t.equal(loadConfig({ ...base, IDENTITY_JWT: undefined }, { cwd: dir(t), dotenv: false }).identityJwt, undefined)
})

t.test('a PKCS#8 or SEC1 P-256 key, inline, with \\n escapes, or from a _FILE', async (t) => {
  const cwd = dir(t)
  const kid = await jwkThumbprint(await publicJwk(ec.privateKey))
  for (const [name, env] of [
    ['pkcs8', { IDENTITY_JWT_KEY: pkcs8 }],
    ['sec1', { IDENTITY_JWT_KEY: sec1 }],
    ['escaped', { IDENTITY_JWT_KEY: pkcs8.replace(/\n/g, '\\n') }],
    ['file', { IDENTITY_JWT_KEY_FILE: (writeFileSync(join(cwd, 'k.pem'), pkcs8), 'k.pem') }]
  ] as Array<[string, Env]>) {
    const config = loadConfig({ ...base, ...env }, { cwd, dotenv: false })
    t.equal(await jwkThumbprint(await publicJwk(config.identityJwt!.signingKey)), kid, name)
    t.equal(config.identityJwt!.issuer, 'https://tt.example.com')
    t.equal(config.identityJwt!.audience, undefined)
  }
})

t.test('previous keys: several PEM blocks, private or public', async (t) => {
  const a = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const config = loadConfig({
    ...base,
    IDENTITY_JWT_KEY: pkcs8,
    IDENTITY_JWT_KEY_PREVIOUS: a.publicKey.export({ format: 'pem', type: 'spki' }).toString() + sec1,
    IDENTITY_JWT_AUDIENCE: 'timetracker'
  }, { cwd: dir(t), dotenv: false })
  t.equal(config.identityJwt!.previousKeys.length, 2)
  t.equal(config.identityJwt!.audience, 'timetracker')
})

t.test('every problem is named', async (t) => {
  const cwd = dir(t)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  t.same(problems({ ...base, IDENTITY_JWT_KEY: rsa }, cwd), ['IDENTITY_JWT_KEY'], 'RSA')
  t.same(problems({ ...base, IDENTITY_JWT_KEY: p384 }, cwd), ['IDENTITY_JWT_KEY'], 'P-384')
  t.same(problems({ ...base, IDENTITY_JWT_KEY: 'not a key' }, cwd), ['IDENTITY_JWT_KEY'])
  t.same(problems({ ...base, IDENTITY_JWT_KEY: pkcs8 + pkcs8 }, cwd), ['IDENTITY_JWT_KEY'], 'two keys')
  t.same(problems({ ...base, IDENTITY_JWT_KEY: pkcs8, IDENTITY_JWT_KEY_PREVIOUS: 'x' }, cwd), ['IDENTITY_JWT_KEY_PREVIOUS'])
  t.same(problems({ ...base, IDENTITY_JWT_KEY: pkcs8, IDENTITY_JWT_KEY_PREVIOUS: rsa }, cwd), ['IDENTITY_JWT_KEY_PREVIOUS'])
  t.same(problems({ ...base, IDENTITY_JWT: 'maybe' }, cwd), ['IDENTITY_JWT'])
  t.same(problems({ ...base, PUBLIC_URL: undefined, IDENTITY_JWT_KEY: pkcs8 }, cwd), ['PUBLIC_URL'])
  t.same(problems({ ...base, NODE_ENV: 'production', LOCAL_AUTH: 'password' }, cwd), ['IDENTITY_JWT_KEY'], 'production needs a key')
  const err = (() => { try { loadConfig({ ...base, IDENTITY_JWT_KEY: rsa }, { cwd, dotenv: false }) } catch (e) { return (e as Error).message } return '' })()
  t.match(err, /openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256/, 'the message says how to make one')
  t.notMatch(err, /BEGIN/, 'and never echoes key material')
})

t.test('development: generated once, persisted in ./data with mode 0600, stable across restarts', async (t) => {
  const cwd = dir(t)
  const first = loadConfig({ ...base }, { cwd, dotenv: false })
  t.ok(first.generatedSecrets.includes('IDENTITY_JWT_KEY'))
  const file = join(cwd, 'data', 'identity-jwt-key.pem')
  t.match(readFileSync(file, 'utf8'), /BEGIN PRIVATE KEY/)
  t.equal(statSync(file).mode & 0o777, 0o600)
  const second = loadConfig({ ...base }, { cwd, dotenv: false })
  t.equal(await jwkThumbprint(await publicJwk(second.identityJwt!.signingKey)), await jwkThumbprint(await publicJwk(first.identityJwt!.signingKey)))
})
