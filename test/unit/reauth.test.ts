// The password asked again before adding a factor (src/auth/local/reauth.ts): what counts as a
// password typed (anything else is a 400 and not counted by the throttle), and the messages.
import t from 'tap'
import { REAUTH_MESSAGES, typedPassword } from '../../src/auth/local/reauth.js'

t.test('typedPassword: a non-empty string, kept as typed', async (t) => {
  t.equal(typedPassword('correct horse battery staple'), 'correct horse battery staple')
  t.equal(typedPassword(' spaces kept '), ' spaces kept ', 'not trimmed: a password is checked as typed')
  t.equal(typedPassword('x'), 'x')
  for (const value of [undefined, null, '', 0, 42, true, ['a'], { password: 'a' }]) t.equal(typedPassword(value), undefined, `${JSON.stringify(value)}: none`)
})

t.test('the messages', async (t) => {
  t.equal(REAUTH_MESSAGES.throttled(1), 'Too many wrong passwords. Try again in 1 minute.')
  t.equal(REAUTH_MESSAGES.throttled(60), 'Too many wrong passwords. Try again in 1 minute.')
  t.equal(REAUTH_MESSAGES.throttled(61), 'Too many wrong passwords. Try again in 2 minutes.')
  t.equal(REAUTH_MESSAGES.throttled(900), 'Too many wrong passwords. Try again in 15 minutes.')
})
