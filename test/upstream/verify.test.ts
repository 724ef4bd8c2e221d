// @authgate/verify as an upstream uses it: the assertion checks against tokens made by jose (an
// independent signer, including hostile ones), the JWKS fetcher against a real HTTP server, and the
// Fastify and Express/node:http middleware on real upstreams behind the live gateway.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { SignJWT, base64url } from 'jose'
import {
  RemoteJwks, authgateExpress, createRequestVerifier, fastifyAuthgate, importJwk, staticJwks, verifyIdentityAssertion,
  type RequestIdentity
} from '@authgate/verify'
import { jwksDocument, publishedJwk, AssertionSigner } from '../../src/identity/jwt.js'
import { signIdentity } from '../../src/identity/headers.js'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'

const ISS = 'https://tt.example.com'
const AUD = 'http://timetracker:5000'
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const kid = (await publishedJwk(key)).kid
const keys = staticJwks(await jwksDocument(key, []))
const now = Math.floor(Date.now() / 1000)
const claims = { preferred_username: 'alice', admin: false, email: null, name: 'Alice', groups: ['g'], jti: 'j1' }

async function token (opts: { claims?: Record<string, unknown>, header?: Record<string, unknown>, key?: KeyObject | Uint8Array, iat?: number, exp?: number, iss?: string, aud?: string | string[], sub?: string } = {}): Promise<string> {
  return await new SignJWT({ ...claims, ...opts.claims })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...opts.header })
    .setIssuer(opts.iss ?? ISS).setAudience(opts.aud ?? AUD).setSubject(opts.sub ?? '7')
    .setIssuedAt(opts.iat ?? now).setExpirationTime(opts.exp ?? now + 60)
    .sign(opts.key ?? key)
}

const check = async (jwt: string | string[] | undefined, overrides: { now?: number } = {}): ReturnType<typeof verifyIdentityAssertion> =>
  await verifyIdentityAssertion(jwt, keys, { issuer: ISS, audience: AUD, ...overrides })

t.test('a valid assertion (signed by jose) verifies', async (t) => {
  const result = await check(await token())
  t.same(result, { ok: true, assertion: { username: 'alice', isAdmin: false, email: null, fullName: 'Alice', groups: ['g'], subject: '7', issuedAt: now, expiresAt: now + 60, id: 'j1' } })
  t.ok((await check(await token({ aud: ['other', AUD] }))).ok, 'aud as an array')
})

t.test('everything else is refused with a reason', async (t) => {
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const good = await token()
  const [h, p, s] = good.split('.') as [string, string, string]
  const enc = (o: object): string => base64url.encode(JSON.stringify(o))
  const hmacKey = new TextEncoder().encode(JSON.stringify(await publishedJwk(key)))
  const cases: Array<[string, string | string[] | undefined, string]> = [
    ['absent', undefined, 'missing'],
    ['empty', '', 'missing'],
    ['repeated', [good, good], 'malformed'],
    ['two parts', `${h}.${p}`, 'malformed'],
    ['not base64url', `${h}.${p}.${s}=`, 'malformed'],
    ['too long', `${h}.${'A'.repeat(9000)}.${s}`, 'malformed'],
    ['alg none', `${enc({ alg: 'none', kid })}.${p}.`, 'malformed'],
    ['alg none with signature', `${enc({ alg: 'none', kid })}.${p}.${s}`, 'malformed'],
    ['alg HS256 keyed with the public JWK (confusion)', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid }).sign(hmacKey), 'malformed'],
    ['alg ES384', `${enc({ alg: 'ES384', kid })}.${p}.${s}`, 'malformed'],
    ['no kid', `${enc({ alg: 'ES256' })}.${p}.${s}`, 'malformed'],
    ['crit', `${enc({ alg: 'ES256', kid, crit: ['x'], x: 1 })}.${p}.${s}`, 'malformed'],
    ['unknown kid', await token({ header: { kid: 'nope' } }), 'unknown-key'],
    ['other key, same kid', await token({ key: other }), 'bad-signature'],
    ['payload swapped', `${h}.${enc({ ...claims, preferred_username: 'admin', iss: ISS, aud: AUD, sub: '7', iat: now, exp: now + 60 })}.${s}`, 'bad-signature'],
    ['DER-length signature', `${h}.${p}.${base64url.encode(new Uint8Array(70))}`, 'bad-signature'],
    ['wrong issuer', await token({ iss: 'https://evil.example' }), 'wrong-issuer'],
    ['wrong audience', await token({ aud: 'http://other-app' }), 'wrong-audience'],
    ['expired beyond skew', await token({ iat: now - 200, exp: now - 61 }), 'expired'],
    ['issued in the future', await token({ iat: now + 61, exp: now + 121 }), 'expired'],
    ['admin not boolean', await token({ claims: { admin: 'true' } }), 'malformed'],
    ['groups not strings', await token({ claims: { groups: [1] } }), 'malformed'],
    ['no username', await token({ claims: { preferred_username: '' } }), 'malformed'],
    ['empty sub', await token({ sub: '' }), 'malformed'],
    ['typ other than JWT', await token({ header: { typ: 'at+jwt' } }), 'malformed'],
    ['not valid before a time beyond skew', await token({ claims: { nbf: now + 61 } }), 'expired'],
    ['no exp', await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).setIssuer(ISS).setAudience(AUD).setSubject('7').setIssuedAt(now).sign(key), 'malformed']
  ]
  for (const [name, jwt, reason] of cases) {
    // At the `now` the tokens were made with: on a loaded machine a second may pass before this runs.
    const result = await check(jwt, { now })
    t.equal(result.ok ? 'ok' : result.reason, reason, name)
  }
  t.ok((await check(await token({ iat: now - 100, exp: now - 59 }), { now })).ok, 'within 60 s of skew is accepted')
  t.equal((await check(await token(), { now: now + 121 })).ok, false, 'options.now')
})

t.test('RemoteJwks: fetched once, refetched for an unknown kid after the cooldown, survives an outage', async (t) => {
  let body = JSON.stringify(await jwksDocument(key, []))
  let fetches = 0
  let down = false
  const server = createServer((_req, res) => {
    fetches++
    if (down) { res.writeHead(503).end(); return }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_authgate/jwks.json`

  const remote = new RemoteJwks(url, { cooldownSeconds: 0 })
  const opts = { issuer: ISS, audience: AUD }
  t.ok((await verifyIdentityAssertion(await token(), remote, opts)).ok)
  t.ok((await verifyIdentityAssertion(await token(), remote, opts)).ok)
  t.equal(fetches, 1, 'cached')

  const rotated = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  body = JSON.stringify(await jwksDocument(rotated, [key]))
  const fresh = await token({ key: rotated, header: { kid: (await publishedJwk(rotated)).kid } })
  t.ok((await verifyIdentityAssertion(fresh, remote, opts)).ok, 'a new kid is fetched at once')
  t.equal(fetches, 2)

  down = true
  t.ok((await verifyIdentityAssertion(fresh, remote, opts)).ok, 'known keys still work while the gateway is down')
  const unknown = await verifyIdentityAssertion(await token({ header: { kid: 'x' } }), remote, opts)
  t.equal(unknown.ok ? 'ok' : unknown.reason, 'unknown-key', 'fails closed, does not throw')

  const patient = new RemoteJwks(url, { cooldownSeconds: 3600 })
  down = false
  await verifyIdentityAssertion(fresh, patient, opts)
  const count = fetches
  for (let i = 0; i < 5; i++) await verifyIdentityAssertion(await token({ header: { kid: 'y' } }), patient, opts)
  t.equal(fetches, count, 'unknown kids do not hammer the gateway within the cooldown')

  const nowhere = new RemoteJwks('http://127.0.0.1:9/jwks.json', { timeoutMs: 1000 })
  const result = await verifyIdentityAssertion(await token(), nowhere, opts)
  t.equal(result.ok ? 'ok' : result.reason, 'unknown-key')
})

t.test('RemoteJwks: past its cache time with the gateway down, the known keys serve and the gateway is not asked again within the cooldown', async (t) => {
  let fetches = 0
  let down = false
  const server = createServer((_req, res) => {
    fetches++
    if (down) { res.destroy(); return }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(jwksDocumentNow))
  })
  const jwksDocumentNow = await jwksDocument(key, [])
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const remote = new RemoteJwks(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, { cacheSeconds: 0, cooldownSeconds: 3600 })
  const opts = { issuer: ISS, audience: AUD }
  t.ok((await verifyIdentityAssertion(await token(), remote, opts)).ok)
  t.equal(fetches, 1)
  down = true
  t.ok((await verifyIdentityAssertion(await token(), remote, opts)).ok, 'the refetch fails: the known key still verifies')
  t.equal(fetches, 2)
  for (let i = 0; i < 3; i++) t.ok((await verifyIdentityAssertion(await token(), remote, opts)).ok)
  const unknown = await verifyIdentityAssertion(await token({ header: { kid: 'x' } }), remote, opts)
  t.equal(unknown.ok ? 'ok' : unknown.reason, 'unknown-key')
  t.equal(fetches, 2, 'not asked again within the cooldown')
})

t.test('staticJwks and importJwk use ES256 public keys only', async (t) => {
  const published = await publishedJwk(key)
  const refused = async (jwk: object): Promise<string> => {
    const result = await verifyIdentityAssertion(await token(), staticJwks({ keys: [jwk] }), { issuer: ISS, audience: AUD, now })
    return result.ok ? 'ok' : result.reason
  }
  t.equal(await refused(published), 'ok')
  t.equal(await refused({ ...published, alg: 'ES384' }), 'unknown-key', 'another alg')
  t.equal(await refused({ ...published, use: 'enc' }), 'unknown-key', 'another use')
  t.equal(await refused({ ...published, kid: undefined }), 'unknown-key', 'no kid')
  t.equal(await refused({ ...published, x: published.y }), 'unknown-key', 'not a point on the curve')
  t.equal(await refused({ ...published, d: key.export({ format: 'jwk' }).d }), 'unknown-key', 'a private key published by mistake')
  t.same(await verifyIdentityAssertion(await token(), staticJwks({}), { issuer: ISS, audience: AUD }).then((r) => r.ok ? 'ok' : r.reason), 'unknown-key', 'no keys at all')
  t.ok(await importJwk(published))
  t.equal(await importJwk({ ...published, crv: 'P-384' }), undefined)
  t.equal(await importJwk('nope'), undefined)
  const own = await importJwk({ ...published, d: key.export({ format: 'jwk' }).d })
  t.equal(own?.type, 'public', 'private members are ignored')
})

t.test('createRequestVerifier: options checked up front; both checks must agree', async (t) => {
  t.throws(() => createRequestVerifier({}), TypeError)
  t.throws(() => createRequestVerifier({ secret: 'short' }), TypeError)
  const both = createRequestVerifier({ secret: HEADER_SIGNING_SECRET, assertion: { jwks: keys, issuer: ISS, audience: AUD } })
  const signer = await AssertionSigner.create({ privateKey: key, issuer: ISS, audience: AUD })
  const alice = { username: 'alice', isAdmin: false, email: null, fullName: null, groups: [] }
  const session = { uid: 1, iat: now, exp: now + 3600 }
  const headers = { ...signIdentity(alice, HEADER_SIGNING_SECRET), 'x-identity-assertion': await signer.assertionFor(alice, session) }
  const ok = await both(headers)
  t.ok(ok.ok && ok.identity?.headers !== undefined && ok.identity.assertion?.subject === '1')
  const mallory = await signer.assertionFor({ ...alice, username: 'mallory' }, session)
  const mixed = await both({ ...headers, 'x-identity-assertion': mallory })
  t.equal(mixed.ok ? 'ok' : mixed.reason, 'mismatch')
  const noJwt = await both(signIdentity(alice, HEADER_SIGNING_SECRET))
  t.equal(noJwt.ok ? 'ok' : noJwt.reason, 'missing')
  const anonymous = createRequestVerifier({ secret: HEADER_SIGNING_SECRET, allowAnonymous: true })
  t.same(await anonymous({}), { ok: true, identity: undefined })
  const partial = await anonymous({ 'x-user': 'admin' })
  t.equal(partial.ok, false, 'allowAnonymous still refuses headers that are present but unsigned')
  const rotating = createRequestVerifier({ secret: ['the-new-header-signing-secret-0123456789', HEADER_SIGNING_SECRET] })
  t.ok((await rotating(signIdentity(alice, HEADER_SIGNING_SECRET))).ok, 'during a rotation the old secret is still accepted')
  t.ok((await rotating(signIdentity(alice, 'the-new-header-signing-secret-0123456789'))).ok, '...and the new one')
  t.equal((await rotating(signIdentity(alice, 'yet-another-secret-0123456789-abcdefgh'))).ok, false)
  t.throws(() => createRequestVerifier({ secret: [] }), TypeError)
  const web = await createRequestVerifier({ secret: HEADER_SIGNING_SECRET })(new Headers(signIdentity(alice, HEADER_SIGNING_SECRET)))
  t.ok(web.ok, 'WHATWG Headers')
})

t.test('middleware on real upstreams behind the live gateway', async (t) => {
  // Fastify upstream with the plugin, checking HMAC and JWT.
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(fastifyAuthgate, { secret: HEADER_SIGNING_SECRET, allowAnonymous: true })
  app.get('/*', async (request) => ({ user: (request as unknown as { authgate?: RequestIdentity }).authgate?.username ?? null }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const fastifyUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  // node:http upstream with the Express-style middleware (the signature Express and Connect use).
  const express = authgateExpress({ secret: HEADER_SIGNING_SECRET })
  const plain = createServer((req: IncomingMessage & { authgate?: RequestIdentity }, res: ServerResponse) => {
    express(req, res, (err) => {
      if (err !== undefined) { res.statusCode = 500; res.end(); return }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ user: req.authgate?.username }))
    })
  })
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { plain.close() })
  const plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`

  for (const [name, upstreamUrl] of [['fastify', fastifyUrl], ['express-style', plainUrl]] as const) {
    const gateway = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: upstreamUrl })
    t.teardown(gateway.close)
    const cookie = cookieHeader((await loginLocal(gateway.url, 'zoe')).cookies)
    const through = await http(gateway.url + '/page', { headers: { cookie } })
    t.same([through.status, JSON.parse(through.body)], [200, { user: 'zoe' }], `${name}: through the gateway`)
    const forged = await http(upstreamUrl + '/page', { headers: signIdentity({ username: 'admin', isAdmin: true, email: null, fullName: null, groups: [] }, 'a-different-secret-of-at-least-32-chars!!') })
    t.equal(forged.status, 401, `${name}: headers signed with another secret`)
    t.match(JSON.parse(forged.body), { error: 'unauthenticated', reason: 'bad-signature' })
    t.equal(forged.headers['cache-control'], 'no-store')
    const bare = await http(upstreamUrl + '/page')
    t.equal(bare.status, name === 'fastify' ? 200 : 401, `${name}: no headers (allowAnonymous ${name === 'fastify'})`)
  }
})
