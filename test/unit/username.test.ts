import t from 'tap'
import { normalizeUsername } from '../../src/db/users.js'
import { isValidUsername } from '../../src/auth/local/routes.js'

t.test('usernames are trimmed, lower-cased and NFKC-normalised', async (t) => {
  t.equal(normalizeUsername('  Alice '), 'alice')
  t.equal(normalizeUsername('ＡＤＭＩＮ'), 'admin', 'fullwidth look-alike is the same name')
  t.equal(normalizeUsername('ﬁona'), 'fiona', 'ligature')
  t.equal(normalizeUsername('Zoe\u0301'), 'zoé', 'combining accent composed')
})

t.test('valid usernames', async (t) => {
  for (const ok of ['alice', 'a.b-c_d@example.com', 'zoé', 'user+tag', '42']) t.ok(isValidUsername(ok), ok)
  for (const bad of ['', ' alice', '.alice', 'a b', 'a/b', 'a\nb', 'x'.repeat(65), '<b>']) t.notOk(isValidUsername(bad), JSON.stringify(bad))
})
