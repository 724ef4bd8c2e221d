import t from 'tap'
import { deriveKey } from '../../src/session/keys.js'
import {
  flowsToEvict, isWellFormedState, newTransaction, openTransaction, sealTransaction, stateOfCookie,
  transactionCookieName, TRANSACTION_MAX_AGE
} from '../../src/auth/oidc/transaction.js'

const key = deriveKey('k'.repeat(40), 'd'.repeat(43), 'oidc-transaction-v1')
const oldKey = deriveKey('o'.repeat(40), 'd'.repeat(43), 'oidc-transaction-v1')
const otherKey = deriveKey('x'.repeat(40), 'd'.repeat(43), 'oidc-transaction-v1')
const now = 1_700_000_000

t.test('a new transaction has fresh random state, nonce and PKCE verifier', async (t) => {
  const a = newTransaction('/next', now)
  const b = newTransaction('/next', now)
  t.ok(isWellFormedState(a.state))
  t.not(a.state, b.state)
  t.not(a.nonce, b.nonce)
  t.not(a.verifier, b.verifier)
  t.match(a.verifier, /^[\w-]{43,128}$/)
  t.equal(a.next, '/next')
})

t.test('seal/open round trip, with key rotation', async (t) => {
  const tx = newTransaction('/reports?week=3', now)
  t.same(openTransaction([key], tx.state, sealTransaction(key, tx), now + 5), tx)
  t.same(openTransaction([key, oldKey], tx.state, sealTransaction(oldKey, tx), now), tx, 'sealed with SECRET_KEY_PREVIOUS')
  t.equal(openTransaction([key], tx.state, sealTransaction(otherKey, tx), now), undefined, 'unknown key')
})

t.test('fails closed on anything odd', async (t) => {
  const tx = newTransaction('/', now)
  const sealed = sealTransaction(key, tx)
  const other = newTransaction('/', now).state
  t.equal(openTransaction([key], other, sealed, now), undefined, 'bound to its state')
  t.equal(openTransaction([key], tx.state, sealed, now + TRANSACTION_MAX_AGE), undefined, 'expired after 10 minutes')
  t.ok(openTransaction([key], tx.state, sealed, now + TRANSACTION_MAX_AGE - 1), 'valid just before')
  t.equal(openTransaction([key], tx.state, sealed, now - 61), undefined, 'from the future')
  const raw = Buffer.from(sealed.slice(3), 'base64url')
  raw[20] = raw[20]! ^ 1
  t.equal(openTransaction([key], tx.state, 'v1.' + raw.toString('base64url'), now), undefined, 'tampered')
  for (const bad of [undefined, '', 'v1.', 'v2.' + sealed.slice(3), sealed.slice(3), 'v1.AAAA', 'v1.' + 'A'.repeat(5000), 42]) {
    t.equal(openTransaction([key], tx.state, bad, now), undefined, String(bad).slice(0, 20))
  }
  t.equal(openTransaction([key], 'short', sealed, now), undefined)
})

t.test('cookie names', async (t) => {
  const state = newTransaction('/', now).state
  const name = transactionCookieName('authgate_oidc_', state)
  t.equal(stateOfCookie('authgate_oidc_', name), state)
  t.equal(stateOfCookie('authgate_oidc_', 'authgate'), undefined)
  t.equal(stateOfCookie('authgate_oidc_', 'authgate_oidc_x'), undefined)
  t.notOk(isWellFormedState('a'.repeat(31)))
  t.notOk(isWellFormedState('a'.repeat(31) + '/'))
  t.notOk(isWellFormedState(null))
})

t.test('flowsToEvict: unreadable first, then oldest, to stay within count and bytes', async (t) => {
  const flow = (name: string, createdAt: number | undefined, size = 300): { name: string, createdAt: number | undefined, size: number } => ({ name, createdAt, size })
  t.same(flowsToEvict([], 300), [])
  t.same(flowsToEvict([flow('a', 1), flow('b', 2)], 300), [])
  t.same(flowsToEvict([flow('bad', undefined), flow('a', 1)], 300), ['bad'], 'unreadable cookies always go')
  t.same(flowsToEvict([flow('c', 3), flow('a', 1), flow('d', 4), flow('b', 2), flow('e', 5)], 300), ['a'], 'count cap: the oldest gives way')
  t.same(flowsToEvict([flow('a', 1, 3000), flow('b', 2, 3000), flow('c', 3, 1000)], 2500), ['a'], 'byte budget')
})
