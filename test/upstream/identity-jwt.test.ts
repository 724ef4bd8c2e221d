// IDENTITY_JWT end to end: the live gateway's X-Identity-Assertion checked by jose (an independent
// JOSE implementation) against the live /_authgate/jwks.json, tampering, expiry and key rotation.
import t from 'tap'
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { once } from 'node:events'
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, errors } from 'jose'
import WebSocket from 'ws'
import { startGateway, HEADER_SIGNING_SECRET, type TestGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { startWsUpstream } from '../support/ws-upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const PUBLIC_URL = 'http://tt.example.test'
const pem = (key: KeyObject): string => key.export({ format: 'pem', type: 'pkcs8' }).toString()
const newKey = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey

const upstream = await startUpstream()
t.teardown(upstream.close)

async function gatewayWith (env: Record<string, string>): Promise<TestGateway> {
  const gateway = await startGateway({ IDENTITY_JWT: 'true', PUBLIC_URL, ADMIN_USERNAMES: 'root', SKIP_AUTH_PATHS: '/public/', ...env }, { upstream: upstream.url })
  t.teardown(gateway.close)
  return gateway
}

/** The assertion and the other headers the upstream received for one request through the gateway. */
async function assertionFor (gateway: TestGateway, cookie: string, path = '/app'): Promise<{ token: string, headers: Record<string, unknown> }> {
  const res = await http(gateway.url + path, { headers: { cookie, 'x-identity-assertion': 'forged' } })
  if (res.status !== 200) throw new Error(`status ${res.status}`)
  const headers = upstream.received.at(-1)!.headers
  return { token: headers['x-identity-assertion'] as string, headers }
}

const jwks = (gateway: TestGateway): ReturnType<typeof createRemoteJWKSet> => createRemoteJWKSet(new URL(gateway.url + '/_authgate/jwks.json'))

const key1 = newKey()
const gateway1 = await gatewayWith({ IDENTITY_JWT_KEY: pem(key1) })
const root = cookieHeader((await loginLocal(gateway1.url, 'root')).cookies)

t.test('the assertion verifies with the published JWKS and carries the identity', async (t) => {
  const { token, headers } = await assertionFor(gateway1, root)
  t.not(token, 'forged', 'a client-sent X-Identity-Assertion never reaches the upstream')
  const { payload, protectedHeader } = await jwtVerify(token, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url, algorithms: ['ES256'] })
  t.equal(protectedHeader.alg, 'ES256')
  t.equal(protectedHeader.typ, 'JWT')
  t.type(protectedHeader.kid, 'string')
  t.match(payload, { iss: PUBLIC_URL, aud: upstream.url, preferred_username: 'root', admin: true, email: null, name: null, groups: [] })
  t.match(payload.sub, /^\d+$/, 'sub is the gateway user id')
  t.equal(payload.exp! - payload.iat!, 60, 'lives 60 s')
  t.type(payload.jti, 'string')
  const hmac = verifyIdentityHeaders(headers as Record<string, string>, HEADER_SIGNING_SECRET)
  t.ok(hmac.ok, 'the HMAC headers are still sent and verify')

  const doc = await http(gateway1.url + '/_authgate/jwks.json')
  t.match(doc.headers['content-type'], /^application\/jwk-set\+json/)
  t.match(doc.headers['cache-control'], /max-age=300/)
  const keys = (JSON.parse(doc.body) as { keys: Array<Record<string, unknown>> }).keys
  t.equal(keys.length, 1)
  t.same(Object.keys(keys[0]!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'], 'public members only (no d)')
  t.equal(keys[0]!.kid, protectedHeader.kid)
})

t.test('assertions are reused within a session, not signed per request', async (t) => {
  const first = await assertionFor(gateway1, root)
  const second = await assertionFor(gateway1, root, '/other')
  t.equal(second.token, first.token, 'same token (same jti) for back-to-back requests')
  const bob = cookieHeader((await loginLocal(gateway1.url, 'bob')).cookies)
  const other = await assertionFor(gateway1, bob)
  t.not(other.token, first.token, 'another session gets its own')
  const { payload } = await jwtVerify(other.token, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url })
  t.equal(payload.preferred_username, 'bob')
  t.equal(payload.admin, false)
})

t.test('tampered assertions are rejected', async (t) => {
  const { token } = await assertionFor(gateway1, root)
  const [h, p, s] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  const forgedPayload = Buffer.from(JSON.stringify({ ...claims, preferred_username: 'admin' })).toString('base64url')
  await t.rejects(jwtVerify(`${h}.${forgedPayload}.${s}`, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url }), errors.JWSSignatureVerificationFailed)
  const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11)
  await t.rejects(jwtVerify(`${h}.${p}.${flipped}`, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url }), errors.JWSSignatureVerificationFailed)
  await t.rejects(jwtVerify(token, jwks(gateway1), { issuer: PUBLIC_URL, audience: 'http://another-app' }), errors.JWTClaimValidationFailed)
  await t.rejects(jwtVerify(token, jwks(gateway1), { issuer: 'http://another-gateway', audience: upstream.url }), errors.JWTClaimValidationFailed)
})

t.test('assertions expire after 60 s', async (t) => {
  const { token } = await assertionFor(gateway1, root)
  const { payload } = await jwtVerify(token, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url })
  await t.resolves(jwtVerify(token, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url, currentDate: new Date((payload.exp! - 1) * 1000) }))
  await t.rejects(jwtVerify(token, jwks(gateway1), { issuer: PUBLIC_URL, audience: upstream.url, currentDate: new Date((payload.exp! + 1) * 1000) }), errors.JWTExpired)
})

t.test('key rotation keeps old assertions verifiable until they expire', async (t) => {
  const old = await assertionFor(gateway1, root)
  const oldKid = decodeProtectedHeader(old.token).kid
  const key2 = newKey()
  // Rotation step: new key, the old one still published. The old gateway's tokens still verify.
  const rotating = await gatewayWith({ IDENTITY_JWT_KEY: pem(key2), IDENTITY_JWT_KEY_PREVIOUS: pem(key1) })
  const kids = (JSON.parse((await http(rotating.url + '/_authgate/jwks.json')).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)
  t.equal(kids.length, 2)
  t.equal(kids[1], oldKid, 'current first, previous after')
  const { payload } = await jwtVerify(old.token, jwks(rotating), { issuer: PUBLIC_URL, audience: upstream.url })
  t.equal(payload.preferred_username, 'root', 'a token signed with the previous key verifies')
  await t.rejects(jwtVerify(old.token, jwks(rotating), { issuer: PUBLIC_URL, audience: upstream.url, currentDate: new Date((payload.exp! + 1) * 1000) }), errors.JWTExpired, '...until it expires')

  const fresh = await assertionFor(rotating, cookieHeader((await loginLocal(rotating.url, 'root')).cookies))
  t.equal(decodeProtectedHeader(fresh.token).kid, kids[0], 'new assertions are signed with the new key')
  await t.resolves(jwtVerify(fresh.token, jwks(rotating), { issuer: PUBLIC_URL, audience: upstream.url }))

  // Rotation done: previous key removed. Old tokens no longer verify at all.
  const rotated = await gatewayWith({ IDENTITY_JWT_KEY: pem(key2) })
  await t.rejects(jwtVerify(old.token, jwks(rotated), { issuer: PUBLIC_URL, audience: upstream.url }), errors.JWKSNoMatchingKey)
  // PREVIOUS may also be just the public key (SPKI PEM): that is all the JWKS needs.
  const publicOnly = await gatewayWith({ IDENTITY_JWT_KEY: pem(key2), IDENTITY_JWT_KEY_PREVIOUS: createPublicKey(key1).export({ format: 'pem', type: 'spki' }).toString() })
  await t.resolves(jwtVerify(old.token, jwks(publicOnly), { issuer: PUBLIC_URL, audience: upstream.url }))
})

t.test('IDENTITY_JWT_AUDIENCE sets aud', async (t) => {
  const gateway = await gatewayWith({ IDENTITY_JWT_KEY: pem(key1), IDENTITY_JWT_AUDIENCE: 'timetracker' })
  const { token } = await assertionFor(gateway, cookieHeader((await loginLocal(gateway.url, 'carol')).cookies))
  const { payload } = await jwtVerify(token, jwks(gateway), { issuer: PUBLIC_URL, audience: 'timetracker' })
  t.equal(payload.aud, 'timetracker')
})

t.test('skip-auth and unauthenticated requests carry no assertion', async (t) => {
  await http(gateway1.url + '/public/x', { headers: { 'x-identity-assertion': 'forged', X_Identity_Assertion: 'forged' } })
  const headers = upstream.received.at(-1)!.headers
  t.equal(upstream.received.at(-1)!.url, '/public/x')
  t.notOk(Object.keys(headers).some((h) => /identity.assertion/i.test(h)), 'no assertion header variant forwarded')
  const before = upstream.received.length
  t.equal((await http(gateway1.url + '/private', { headers: { 'x-identity-assertion': 'forged' } })).status, 401)
  t.equal(upstream.received.length, before)
})

t.test('without IDENTITY_JWT there is no JWKS and no assertion', async (t) => {
  const plain = await startGateway({}, { upstream: upstream.url })
  t.teardown(plain.close)
  t.equal((await http(plain.url + '/_authgate/jwks.json')).status, 404)
  const { headers } = await assertionFor(plain, cookieHeader((await loginLocal(plain.url, 'dave')).cookies))
  t.notOk('x-identity-assertion' in headers)
})

t.test('WebSocket upgrades carry the assertion too', async (t) => {
  const ws = await startWsUpstream()
  t.teardown(ws.close)
  const gateway = await startGateway({ IDENTITY_JWT: 'true', PUBLIC_URL, IDENTITY_JWT_KEY: pem(key1) }, { upstream: ws.url })
  t.teardown(gateway.close)
  const cookie = cookieHeader((await loginLocal(gateway.url, 'erin')).cookies)
  const client = new WebSocket(gateway.url.replace(/^http/, 'ws') + '/socket.io/?EIO=4&transport=websocket', { headers: { cookie } })
  await once(client, 'open')
  client.send('ping')
  await once(client, 'message')
  const token = ws.handshakes.at(-1)!.headers['x-identity-assertion'] as string
  const { payload } = await jwtVerify(token, jwks(gateway), { issuer: PUBLIC_URL, audience: ws.url })
  t.equal(payload.preferred_username, 'erin')
  client.close()
})
