// The pure decisions around passkeys: the relying party (PUBLIC_URL, or localhost in development
// only), when passkeys are offered, what a ceremony's answer must look like, the names users give,
// the refusal reasons, the session mark, the scripts' policy and the account page as a destination.
import t from 'tap'
import { relyingPartyFor, relyingPartyProblem } from '../../src/auth/passkeys/relying-party.js'
import { passkeyRelyingParty, passkeysEnabled } from '../../src/auth/passkeys/availability.js'
import { isCredentialId, knownTransports, parseAuthenticationResponse, parsePasskeyName, parseRegistrationResponse } from '../../src/auth/passkeys/input.js'
import { failureOf } from '../../src/auth/passkeys/ceremonies.js'
import { formatTime, passkeysPage } from '../../src/pages/passkeys.js'
import { newSessionPayload, parseSessionPayload } from '../../src/session/session.js'
import { contentSecurityPolicy } from '../../src/pages/security-headers.js'
import { safeNextPath } from '../../src/auth/next-url.js'

const dev = { publicUrl: undefined, production: false }
const local = (host: string | undefined, protocol = 'http'): { protocol: string, host: string | undefined } => ({ protocol, host })

t.test('the relying party', async (t) => {
  const publicUrl = new URL('https://tt.example.com')
  t.same(relyingPartyFor({ publicUrl, production: true }, local('evil.example')), { id: 'tt.example.com', origin: 'https://tt.example.com' }, 'PUBLIC_URL decides, whatever the Host header says')
  t.same(relyingPartyFor({ publicUrl: new URL('https://tt.example.com:8443'), production: true }, local(undefined)), { id: 'tt.example.com', origin: 'https://tt.example.com:8443' }, 'the origin keeps its port, the id is the host name')
  t.same(relyingPartyFor(dev, local('localhost:8080')), { id: 'localhost', origin: 'http://localhost:8080' }, 'development without PUBLIC_URL: localhost')
  t.same(relyingPartyFor(dev, local('LOCALHOST:8080')), { id: 'localhost', origin: 'http://localhost:8080' })
  for (const host of ['127.0.0.1:8080', 'tt.example.com', 'localhost.evil.example', 'evil.localhost', 'user@localhost', 'localhost/x', 'localhost:8080/path', '[::1]:8080', '', undefined]) {
    t.equal(relyingPartyFor(dev, local(host)), undefined, `development, Host ${String(host)}: none`)
  }
  t.equal(relyingPartyFor(dev, local('localhost', 'ftp')), undefined)
  t.equal(relyingPartyFor({ publicUrl: undefined, production: true }, local('localhost:8080')), undefined, 'production without PUBLIC_URL: none, not even localhost')
  t.match(relyingPartyProblem({ publicUrl: undefined, production: true }), /PUBLIC_URL/)
  t.equal(relyingPartyProblem(dev), undefined)
  t.match(relyingPartyProblem({ publicUrl: new URL('http://127.0.0.1:8080'), production: false }), /IP address/)
  t.match(relyingPartyProblem({ publicUrl: new URL('http://[::1]:8080'), production: false }), /IP address/)
  t.equal(relyingPartyFor({ publicUrl: new URL('http://10.0.0.1'), production: true }, local('localhost')), undefined)
})

t.test('passkeys are offered with LOCAL_MFA on and passwords only', async (t) => {
  const base = { localMfa: 'optional', localAuth: 'password', authMethod: 'local', ...dev } as const
  t.equal(passkeysEnabled(base), true)
  t.equal(passkeysEnabled({ ...base, localMfa: 'required' }), true)
  t.equal(passkeysEnabled({ ...base, authMethod: 'both' }), true)
  t.equal(passkeysEnabled({ ...base, localMfa: 'off' }), false)
  t.equal(passkeysEnabled({ ...base, localAuth: 'username' }), false)
  t.equal(passkeysEnabled({ ...base, authMethod: 'oidc' }), false)
  t.same(passkeyRelyingParty(base, local('localhost:1')), { id: 'localhost', origin: 'http://localhost:1' })
  t.equal(passkeyRelyingParty({ ...base, localMfa: 'off' }, local('localhost:1')), undefined)
})

t.test('ceremony answers are checked for shape', async (t) => {
  const assertion = { id: 'abc_-1', rawId: 'abc_-1', type: 'public-key', clientExtensionResults: {}, response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' } }
  t.same(parseAuthenticationResponse(assertion), { ...assertion, clientExtensionResults: {} })
  t.ok(parseAuthenticationResponse({ ...assertion, response: { ...assertion.response, userHandle: 'dXNlcg' } }))
  t.ok(parseAuthenticationResponse({ ...assertion, authenticatorAttachment: 'platform' }))
  const bad: Array<[string, unknown]> = [
    ['nothing', undefined], ['a string', 'x'], ['an array', [assertion]],
    ['rawId differs', { ...assertion, rawId: 'other' }],
    ['another type', { ...assertion, type: 'password' }],
    ['an id not base64url', { ...assertion, id: 'a+b', rawId: 'a+b' }],
    ['an empty id', { ...assertion, id: '', rawId: '' }],
    ['an id too long', { ...assertion, id: 'a'.repeat(1365), rawId: 'a'.repeat(1365) }],
    ['no response', { ...assertion, response: undefined }],
    ['clientDataJSON not a string', { ...assertion, response: { ...assertion.response, clientDataJSON: 1 } }],
    ['clientDataJSON too long', { ...assertion, response: { ...assertion.response, clientDataJSON: 'a'.repeat(4097) } }],
    ['no signature', { ...assertion, response: { ...assertion.response, signature: undefined } }],
    ['a userHandle object', { ...assertion, response: { ...assertion.response, userHandle: {} } }],
    ['an odd attachment', { ...assertion, authenticatorAttachment: 'cloud' }],
    ['extension results not an object', { ...assertion, clientExtensionResults: 'x' }]
  ]
  for (const [what, value] of bad) t.equal(parseAuthenticationResponse(value), undefined, `assertion: ${what}`)
  const attestation = { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'e30', attestationObject: 'o2Nm', transports: ['internal', 'usb', 'carrier-pigeon', 'usb', 3] } }
  t.same(parseRegistrationResponse(attestation)?.response.transports, ['internal', 'usb'], 'known transports only, once each')
  t.equal(parseRegistrationResponse({ ...attestation, response: { clientDataJSON: 'e30' } }), undefined, 'no attestation object')
  t.equal(parseRegistrationResponse({ ...attestation, response: { ...attestation.response, attestationObject: 'a'.repeat(16_385) } }), undefined)
  t.same(knownTransports('usb'), [])
  t.equal(isCredentialId('AAAA'), true)
  t.equal(isCredentialId('../x'), false)
  t.equal(isCredentialId(42), false)
})

t.test('passkey names', async (t) => {
  t.equal(parsePasskeyName('  Work laptop  '), 'Work laptop')
  t.equal(parsePasskeyName('Clé de sécurité 🔑'), 'Clé de sécurité 🔑')
  t.equal(parsePasskeyName('x'.repeat(64)), 'x'.repeat(64))
  t.equal(parsePasskeyName('🔑'.repeat(64)), '🔑'.repeat(64), 'characters, not UTF-16 units')
  for (const bad of ['', '   ', 'x'.repeat(65), 'a\nb', 'a\u0000b', 'a\u2028b', 'a\u0085b', 1, null, undefined, ['a']]) {
    // Escaped in the message: a raw line separator would break the TAP stream itself.
    t.equal(parsePasskeyName(bad), undefined, `refused: ${JSON.stringify(bad)?.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}`)
  }
})

t.test('refusal reasons from the library\'s errors', async (t) => {
  t.equal(failureOf(new Error('anything'), true), 'challenge', 'the challenge check refused: that is the reason')
  t.equal(failureOf(new Error('Unexpected authentication response origin "x", expected "y"'), false), 'origin')
  t.equal(failureOf(new Error('User verification was required, but user could not be verified'), false), 'user-verification')
  t.equal(failureOf(new Error('Response counter value 1 was lower than expected 2'), false), 'counter')
  t.equal(failureOf(new Error('Unexpected RP ID hash'), false), 'invalid')
  t.equal(failureOf('not an error', false), 'invalid')
})

t.test('the session marks the second factor', async (t) => {
  const user = { id: 1, username: 'alice', isAdmin: false, email: null, fullName: null }
  const marked = newSessionPayload('a'.repeat(22), user, 'local', 3600, 1_700_000_000, { secondFactor: 'passkey' })
  t.equal(marked.f, 'passkey')
  t.same(parseSessionPayload(marked), marked)
  t.equal(newSessionPayload('a'.repeat(22), user, 'local', 3600, 1_700_000_000).f, undefined, 'absent without one')
  t.equal(newSessionPayload('a'.repeat(22), user, 'oidc', 3600, 1_700_000_000, { secondFactor: 'passkey' }).f, undefined, 'never on SSO sessions')
  t.equal(parseSessionPayload({ ...marked, f: 'sms' }), undefined, 'an unknown factor: not a session')
  t.equal(parseSessionPayload({ ...marked, f: 1 }), undefined)
})

t.test('the pages: scripts from the gateway only, the account pages as a destination, times in UTC', async (t) => {
  t.notMatch(contentSecurityPolicy(), /script-src|connect-src/, 'no scripts by default')
  t.match(contentSecurityPolicy([], [], [], true), /^default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'/)
  t.equal(safeNextPath('/_authgate/account/passkeys'), '/_authgate/account/passkeys')
  t.equal(safeNextPath('/_authgate/account'), '/_authgate/account')
  t.equal(safeNextPath('/_authgate/accounts'), '/')
  t.equal(safeNextPath('/_authgate/account/../metrics'), '/')
  t.equal(safeNextPath('/_authgate/metrics'), '/')
  t.equal(formatTime(new Date('2026-12-02T05:04:59.999Z')), '2026-12-02 05:04 UTC')
  const page = passkeysPage({ appName: 'TT', username: 'alice', csrfToken: 'tok', canAdd: true, passkeys: [{ id: 'id1', name: '<img>', passwordless: false, createdAt: new Date(0), lastUsedAt: null }] })
  t.match(page, '&lt;img&gt;')
  t.match(page, 'aria-label="Remove &lt;img&gt;"')
  t.match(page, 'name="csrf_token" value="tok"')
  t.match(page, 'Second factor only')
  t.match(page, /<input type="password" id="passkey-password" name="password" autocomplete="current-password" required>/, 'the add form asks for the password again')
  t.notMatch(page, /<script>/)
  t.notMatch(passkeysPage({ appName: 'TT', username: 'a', csrfToken: 't', canAdd: false, passkeys: [] }), /id="passkey-add"/, 'no add form at the cap')
})
