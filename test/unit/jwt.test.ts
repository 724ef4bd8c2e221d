// The assertion signer: kid and token format checked independently of jose (which now signs), so a
// jose upgrade that changed either would show here.
import t from 'tap'
import { createHash, generateKeyPairSync, verify } from 'node:crypto'
import { importJWK, jwtVerify, type JWK } from 'jose'
import { AssertionSigner, assertionClaims, jwkThumbprint, jwksDocument, publicJwk, signJwt, ASSERTION_LIFETIME } from '../../src/identity/jwt.js'
import type { Identity } from '../../src/identity/headers.js'

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const alice: Identity = { username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice Ä', groups: ['staff', 'a,b'] }
const session = { uid: 7, iat: 1_700_000_000, exp: 1_700_086_400 }
const now = 1_700_000_100

t.test('kid is the RFC 7638 thumbprint (computed here by hand)', async (t) => {
  const jwk = await publicJwk(privateKey)
  const nodeJwk = publicKey.export({ format: 'jwk' })
  t.same(jwk, { kty: 'EC', crv: 'P-256', x: nodeJwk.x, y: nodeJwk.y }, 'the public members only')
  const canonical = JSON.stringify({ crv: 'P-256', kty: 'EC', x: jwk.x, y: jwk.y })
  t.equal(await jwkThumbprint(jwk), createHash('sha256').update(canonical).digest('base64url'))
  t.same(await publicJwk(publicKey), jwk, 'same from the public half')
  await t.rejects(publicJwk(generateKeyPairSync('ed25519').privateKey), /P-256/)
})

t.test('signJwt: the same compact ES256 JWS as ever, verified with node:crypto', async (t) => {
  const claims = { hello: 'world', iat: 1, z: [1, 'ä'] }
  const token = await signJwt(claims, privateKey, 'k1')
  const [header, payload, signature] = token.split('.') as [string, string, string]
  t.equal(Buffer.from(header, 'base64url').toString(), '{"alg":"ES256","typ":"JWT","kid":"k1"}', 'header members in this order')
  t.equal(Buffer.from(payload, 'base64url').toString(), JSON.stringify(claims), 'claims as given, nothing added')
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]{86}$/, 'unpadded base64url, a 64-byte R||S signature')
  t.ok(verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url')))
})

t.test('claims: identity, 60 s lifetime, never beyond the session', async (t) => {
  const claims = assertionClaims(alice, { issuer: 'https://gw', audience: 'https://app', subject: '7', now, sessionExpiry: session.exp, jti: 'j' })
  t.same(claims, { iss: 'https://gw', aud: 'https://app', sub: '7', preferred_username: 'alice', email: 'a@example.com', name: 'Alice Ä', groups: ['staff', 'a,b'], admin: false, iat: now, exp: now + ASSERTION_LIFETIME, jti: 'j' })
  t.equal(assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: now + 10 }).exp, now + 10)
  t.not(assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: session.exp }).jti,
    assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: session.exp }).jti, 'fresh jti each time')
})

t.test('AssertionSigner caches per session and renews in time', async (t) => {
  const signer = await AssertionSigner.create({ privateKey, issuer: 'https://gw', audience: 'https://app' })
  t.equal(signer.kid, await jwkThumbprint(await publicJwk(privateKey)))
  const first = await signer.assertionFor(alice, session, now)
  t.equal(await signer.assertionFor(alice, session, now + 29), first, 'reused while more than 30 s remain')
  const renewed = await signer.assertionFor(alice, session, now + 30)
  t.not(renewed, first, 're-signed with 30 s left')
  const { payload, protectedHeader } = await jwtVerify(renewed, await importJWK(await publicJwk(privateKey) as JWK, 'ES256'), { currentDate: new Date((now + 30) * 1000), issuer: 'https://gw', audience: 'https://app' })
  t.equal(payload.iat, now + 30)
  t.equal(protectedHeader.kid, signer.kid)
  t.not(await signer.assertionFor({ ...alice, isAdmin: true }, session, now + 30), renewed, 'a different identity never shares a token')
  t.not(await signer.assertionFor(alice, { ...session, iat: session.iat + 1 }, now + 30), renewed, 'nor does another session')
})

t.test('AssertionSigner stays bounded', async (t) => {
  const signer = await AssertionSigner.create({ privateKey, issuer: 'i', audience: 'a', maxEntries: 3 })
  for (let uid = 1; uid <= 10; uid++) await signer.assertionFor(alice, { ...session, uid }, now)
  t.equal(signer.size, 3)
})

t.test('jwksDocument: current first, previous after, duplicates once, public members only', async (t) => {
  const doc = await jwksDocument(privateKey, [other.publicKey, publicKey])
  t.equal(doc.keys.length, 2)
  t.equal(doc.keys[0]!.kid, await jwkThumbprint(await publicJwk(privateKey)))
  t.equal(doc.keys[1]!.kid, await jwkThumbprint(await publicJwk(other.publicKey)))
  for (const k of doc.keys) t.same(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
})
