import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { calculateJwkThumbprint, compactVerify, importJWK, jwtVerify, type JWK } from 'jose'
import { AssertionSigner, assertionClaims, jwkThumbprint, jwksDocument, publicJwk, signJwt, ASSERTION_LIFETIME } from '../../src/identity/jwt.js'
import type { Identity } from '../../src/identity/headers.js'

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const alice: Identity = { username: 'alice', isAdmin: false, email: 'a@example.com', fullName: 'Alice Ä', groups: ['staff', 'a,b'] }
const session = { uid: 7, iat: 1_700_000_000, exp: 1_700_086_400 }
const now = 1_700_000_100

t.test('kid is the RFC 7638 thumbprint (as jose computes it)', async (t) => {
  const jwk = publicJwk(privateKey)
  t.equal(jwkThumbprint(jwk), await calculateJwkThumbprint(jwk as JWK, 'sha256'))
  t.same(publicJwk(publicKey), jwk, 'same from the public half')
  t.throws(() => publicJwk(generateKeyPairSync('ed25519').privateKey), /P-256/)
})

t.test('signJwt produces an ES256 JWS that jose verifies', async (t) => {
  const token = signJwt({ hello: 'world' }, privateKey, 'k1')
  const { payload, protectedHeader } = await compactVerify(token, await importJWK(publicJwk(privateKey) as JWK, 'ES256'))
  t.same(protectedHeader, { alg: 'ES256', typ: 'JWT', kid: 'k1' })
  t.same(JSON.parse(Buffer.from(payload).toString()), { hello: 'world' })
})

t.test('claims: identity, 60 s lifetime, never beyond the session', async (t) => {
  const claims = assertionClaims(alice, { issuer: 'https://gw', audience: 'https://app', subject: '7', now, sessionExpiry: session.exp, jti: 'j' })
  t.same(claims, { iss: 'https://gw', aud: 'https://app', sub: '7', preferred_username: 'alice', email: 'a@example.com', name: 'Alice Ä', groups: ['staff', 'a,b'], admin: false, iat: now, exp: now + ASSERTION_LIFETIME, jti: 'j' })
  t.equal(assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: now + 10 }).exp, now + 10)
  t.not(assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: session.exp }).jti,
    assertionClaims(alice, { issuer: 'i', audience: 'a', subject: '7', now, sessionExpiry: session.exp }).jti, 'fresh jti each time')
})

t.test('AssertionSigner caches per session and renews in time', async (t) => {
  const signer = new AssertionSigner({ privateKey, issuer: 'https://gw', audience: 'https://app' })
  const first = signer.assertionFor(alice, session, now)
  t.equal(signer.assertionFor(alice, session, now + 29), first, 'reused while more than 30 s remain')
  const renewed = signer.assertionFor(alice, session, now + 30)
  t.not(renewed, first, 're-signed with 30 s left')
  const { payload } = await jwtVerify(renewed, await importJWK(publicJwk(privateKey) as JWK, 'ES256'), { currentDate: new Date((now + 30) * 1000), issuer: 'https://gw', audience: 'https://app' })
  t.equal(payload.iat, now + 30)
  t.not(signer.assertionFor({ ...alice, isAdmin: true }, session, now + 30), renewed, 'a different identity never shares a token')
  t.not(signer.assertionFor(alice, { ...session, iat: session.iat + 1 }, now + 30), renewed, 'nor does another session')
})

t.test('AssertionSigner stays bounded', async (t) => {
  const signer = new AssertionSigner({ privateKey, issuer: 'i', audience: 'a', maxEntries: 3 })
  for (let uid = 1; uid <= 10; uid++) signer.assertionFor(alice, { ...session, uid }, now)
  t.equal(signer.size, 3)
})

t.test('jwksDocument: current first, previous after, duplicates once, public members only', async (t) => {
  const doc = jwksDocument(privateKey, [other.publicKey, publicKey])
  t.equal(doc.keys.length, 2)
  t.equal(doc.keys[0]!.kid, jwkThumbprint(publicJwk(privateKey)))
  t.equal(doc.keys[1]!.kid, jwkThumbprint(publicJwk(other.publicKey)))
  for (const k of doc.keys) t.same(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
})
