// The second factor's pure parts: TOTP against RFC 6238's own test vector and an independent HMAC
// implementation, recovery codes, step tokens, the sealing of secrets, the session's second-factor
// keys and the LOCAL_MFA=required decision.
import t from 'tap'
import { matchTotp, newTotpSecret, normaliseTotpCode, otpauthUri, timeStepOf } from '../../src/auth/mfa/totp.js'
import { newRecoveryCodes, normaliseRecoveryCode, RecoveryCodeHasher, RECOVERY_CODE_COUNT } from '../../src/auth/mfa/recovery-codes.js'
import { newStepToken, stepTokenHash, stepTokenHashOf } from '../../src/auth/mfa/step-token.js'
import { SealedBox } from '../../src/session/sealed-box.js'
import { RefreshTokenCipher } from '../../src/session/refresh-token-cipher.js'
import { secondFactorHold } from '../../src/auth/mfa/gate.js'
import { newSessionPayload, parseSessionPayload } from '../../src/session/session.js'
import { base32Decode, totpCode } from '../support/totp.js'
import { secondStepPage } from '../../src/pages/second-factor.js'

// RFC 6238 appendix B: the SHA-1 seed "12345678901234567890"; at T=59 s the 8-digit code is 94287082.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'

t.test('TOTP: the RFC 6238 vector, ±1 step, and the step that matched', async (t) => {
  t.equal(base32Decode(RFC_SECRET).toString(), '12345678901234567890')
  t.equal(totpCode(RFC_SECRET, 59_000), '287082', 'the test helper agrees with the RFC (last 6 digits)')
  t.equal(await matchTotp(RFC_SECRET, '287082', 59), 1, 'step 1 at 59 s')
  t.equal(await matchTotp(RFC_SECRET, '287 082', 59), 1, 'spaces as apps show them')
  const now = 1_764_651_234
  const secret = newTotpSecret()
  t.match(secret, /^[A-Z2-7]{32}$/, '160 bits in base32, no padding')
  for (const offset of [-1, 0, 1]) t.equal(await matchTotp(secret, totpCode(secret, now * 1000, offset), now), timeStepOf(now) + offset, `offset ${offset} accepted`)
  for (const offset of [-2, 2]) t.equal(await matchTotp(secret, totpCode(secret, now * 1000, offset), now), undefined, `offset ${offset} refused`)
  t.equal(await matchTotp(secret, totpCode(secret, now * 1000), now, timeStepOf(now)), undefined, 'the last accepted step is refused')
  t.equal(await matchTotp(secret, totpCode(secret, now * 1000, 1), now, timeStepOf(now)), timeStepOf(now) + 1, 'a later step is not')
  t.equal(await matchTotp(newTotpSecret(), totpCode(secret, now * 1000), now), undefined, 'another secret')
  for (const bad of [undefined, 12345, '', '12345', '1234567', 'abcdef', '12345a', '1'.repeat(40), ['123456']]) t.equal(normaliseTotpCode(bad), undefined, String(bad))
  t.equal(normaliseTotpCode(' 123-456 '), '123456')
})

t.test('the otpauth URI names the issuer and account, and carries the secret', async (t) => {
  const uri = new URL(otpauthUri('JBSWY3DPEHPK3PXP', 'My App', 'alice'))
  t.equal(uri.protocol, 'otpauth:')
  t.equal(uri.host, 'totp')
  t.equal(decodeURIComponent(uri.pathname), '/My App:alice')
  t.equal(uri.searchParams.get('secret'), 'JBSWY3DPEHPK3PXP')
  t.equal(uri.searchParams.get('issuer'), 'My App')
})

t.test('recovery codes: ten distinct, typed loosely, hashed per user and key', async (t) => {
  const codes = newRecoveryCodes()
  t.equal(codes.length, RECOVERY_CODE_COUNT)
  t.equal(new Set(codes).size, RECOVERY_CODE_COUNT)
  for (const c of codes) t.match(c, /^[a-z2-9]{5}-[a-z2-9]{5}$/)
  t.equal(normaliseRecoveryCode(' ' + codes[0]!.toUpperCase().replace('-', ' ') + ' '), codes[0])
  for (const bad of [undefined, '', '123456', 'abcde-abcd', 'abcde-abcd0', 'x'.repeat(100)]) t.equal(normaliseRecoveryCode(bad), undefined, String(bad))
  const hasher = new RecoveryCodeHasher(Buffer.alloc(32, 1))
  const stored = codes.map((c) => hasher.hash(7, c))
  t.notOk(stored.some((h, i) => h.includes(codes[i]!.replace('-', ''))), 'no code in its hash')
  t.equal(hasher.match(7, codes[3], stored), stored[3])
  t.equal(hasher.match(7, codes[3]!.toUpperCase(), stored), stored[3], 'typed loosely')
  t.equal(hasher.match(8, codes[3], stored), undefined, 'bound to the user')
  t.equal(hasher.match(7, 'zzzzz-zzzzz', stored), undefined)
  t.equal(hasher.match(7, codes[3], []), undefined)
  t.equal(new RecoveryCodeHasher(Buffer.alloc(32, 2)).match(7, codes[3], stored), undefined, 'bound to the key')
})

t.test('step tokens: random, stored as a hash, anything else never looked up', async (t) => {
  const a = newStepToken()
  const b = newStepToken()
  t.not(a.token, b.token)
  t.match(a.token, /^[\w-]{43}$/)
  t.equal(a.hash, stepTokenHash(a.token))
  t.not(a.hash, a.token)
  t.equal(stepTokenHashOf(a.token), a.hash)
  for (const bad of [undefined, 1, '', 'short', a.token + 'x', a.token.slice(1) + '!']) t.equal(stepTokenHashOf(bad), undefined, String(bad))
})

t.test('sealed secrets: bound to their record, opened by every configured key, the refresh-token format kept', async (t) => {
  const box = new SealedBox(['k1-0123456789abcdef0123456789abcdef'], 'dep', 'totp-secret-v1', 'totp secret')
  const sealed = box.seal('7', 'JBSWY3DPEHPK3PXP')
  t.notMatch(sealed, /JBSWY3DPEHPK3PXP/)
  t.equal(box.open('7', sealed), 'JBSWY3DPEHPK3PXP')
  t.equal(box.open('8', sealed), undefined, 'another user\'s row')
  t.equal(box.open('7', sealed.slice(0, -2) + 'AA'), undefined, 'altered')
  t.equal(box.open('7', 'garbage'), undefined)
  t.equal(new SealedBox(['k2-0123456789abcdef0123456789abcdef', 'k1-0123456789abcdef0123456789abcdef'], 'dep', 'totp-secret-v1', 'totp secret').open('7', sealed), 'JBSWY3DPEHPK3PXP', 'rotation')
  t.equal(new SealedBox(['k1-0123456789abcdef0123456789abcdef'], 'dep', 'refresh-token-v1', 'totp secret').open('7', sealed), undefined, 'another purpose\'s key')
  const cipher = new RefreshTokenCipher(['k1-0123456789abcdef0123456789abcdef'], 'dep')
  const token = cipher.encrypt('sid', 'refresh')
  t.equal(new SealedBox(['k1-0123456789abcdef0123456789abcdef'], 'dep', 'refresh-token-v1', 'refresh token').open('sid', token), 'refresh', 'refresh tokens sealed as before')
})

t.test('session payload: the second factor and the pending enrolment, parsed strictly', async (t) => {
  const user = { id: 1, username: 'alice', isAdmin: false, email: null, fullName: null }
  const full = newSessionPayload('A'.repeat(22), user, 'local', 3600, 1_000_000, { secondFactor: 'totp' })
  t.equal(full.f, 'totp')
  t.equal(full.pe, undefined)
  t.same(parseSessionPayload(JSON.parse(JSON.stringify(full))), full)
  const pending = newSessionPayload('A'.repeat(22), user, 'local', 3600, 1_000_000, { enrolmentPending: true })
  t.equal(pending.pe, true)
  t.same(parseSessionPayload(pending), pending)
  t.equal(newSessionPayload('A'.repeat(22), user, 'oidc', 3600, 1_000_000, { secondFactor: 'totp', enrolmentPending: true }).f, undefined, 'never on SSO sessions')
  for (const bad of [{ f: 'sms' }, { f: 1 }, { pe: false }, { pe: 'yes' }]) t.equal(parseSessionPayload({ ...full, ...bad }), undefined, JSON.stringify(bad))
})

t.test('LOCAL_MFA=required holds sessions without a second factor; SSO and optional never', async (t) => {
  t.equal(secondFactorHold('required', { m: 'local', pe: true }), 'enrol')
  t.equal(secondFactorHold('optional', { m: 'local', pe: true }), 'enrol', 'a pending session stays held whatever the setting now')
  t.equal(secondFactorHold('required', { m: 'local' }), 'enrol', 'a local session that passed no factor')
  t.equal(secondFactorHold('required', { m: 'local', f: 'totp' }), undefined)
  t.equal(secondFactorHold('required', { m: 'local', f: 'recovery' }), undefined)
  t.equal(secondFactorHold('required', { m: 'local', f: 'passkey' }), undefined)
  t.equal(secondFactorHold('required', { m: 'oidc' }), undefined, 'the IdP handles SSO users\' factors')
  t.equal(secondFactorHold('optional', { m: 'local' }), undefined)
  t.equal(secondFactorHold('off', { m: 'local' }), undefined)
})

t.test('the second step page: a code field unless a passkey is the only factor', async (t) => {
  const base = { appName: 'Acme', csrfToken: 'c'.repeat(43), mfaToken: 'm'.repeat(43), next: '/x?y=1' }
  const codesOnly = secondStepPage(base)
  t.match(codesOnly, 'name="code"')
  t.notMatch(codesOnly, /passkey|<script/i)
  const both = secondStepPage({ ...base, passkey: true, codes: true })
  t.match(both, 'name="code"')
  t.match(both, 'id="passkey-second-factor"')
  t.match(both, '<script src="/_authgate/static/passkeys.js" defer></script>')
  const passkeyOnly = secondStepPage({ ...base, passkey: true, codes: false })
  t.notMatch(passkeyOnly, 'name="code"', 'no code could be right')
  t.notMatch(passkeyOnly, '>Verify</button>')
  t.match(passkeyOnly, 'Use your passkey to finish signing in.')
  t.match(passkeyOnly, /<form method="post" action="\/login\/mfa" novalidate hidden>/)
  for (const field of ['csrf_token', 'mfa_token', 'next']) t.match(passkeyOnly, `name="${field}"`, `${field} kept for passkeys.js`)
  t.match(passkeyOnly, 'id="passkey-second-factor"')
  // Without a usable passkey the code form stays, whatever `codes` says: the page is never empty.
  t.match(secondStepPage({ ...base, passkey: false, codes: false }), 'name="code"')
})
