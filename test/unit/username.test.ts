import t from 'tap'
import { checkUsername, isValidUsername } from '../../src/db/username.js'

t.test('case variants are the same name: lower-casing is the only mapping', async (t) => {
  for (const [input, stored] of [['Alice', 'alice'], ['ALICE', 'alice'], ['alice', 'alice'], ['Karl', 'karl'], ['Zoé', 'zoé'], ['ZOÉ', 'zoé'],
    ['ẞ', 'ß'], ['Ünïcode', 'ünïcode'], ['Bob.Boss@Example.test', 'bob.boss@example.test'], ['ΑΣ', 'ας'], ['42', '42']] as const) {
    t.same(checkUsername(input), { ok: true, username: stored }, `${input} → ${stored}`)
  }
})

t.test('look-alikes are refused, never folded onto another name', async (t) => {
  // [input, the name the old NFKC + trim + lower-case folding made of it, problem, first offending code point]
  const table: Array<[string, string, string, string | undefined]> = [
    ['ａｄｍｉｎ', 'admin', 'lookalike', 'U+FF41'], // fullwidth
    ['ＡＤＭＩＮ', 'admin', 'lookalike', 'U+FF21'],
    ['\u212Aarl', 'karl', 'lookalike', 'U+212A'], // Kelvin sign
    ['\u212Bngstrom', 'ångstrom', 'lookalike', 'U+212B'], // Angstrom sign
    ['\u2126mega', 'ωmega', 'lookalike', 'U+2126'], // Ohm sign
    ['ﬁona', 'fiona', 'lookalike', 'U+FB01'], // ligature
    ['Zoe\u0301', 'zoé', 'lookalike', 'U+0301'], // decomposed accent
    ['admin²', 'admin2', 'lookalike', 'U+00B2'], // superscript
    ['ⓐdmin', 'admin', 'lookalike', 'U+24D0'], // circled
    ['𝐚dmin', 'admin', 'lookalike', 'U+1D41A'], // mathematical bold
    ['Ⅻ', 'xii', 'lookalike', 'U+216B'], // roman numeral
    ['admin\u00A0', 'admin', 'surrounding-space', undefined], // no-break space
    ['admin ', 'admin', 'surrounding-space', undefined],
    [' admin', 'admin', 'surrounding-space', undefined],
    ['\u3000admin', 'admin', 'surrounding-space', undefined] // ideographic space
  ]
  for (const [input, folded, problem, codePoint] of table) {
    const result = checkUsername(input)
    t.notOk(result.ok, `${JSON.stringify(input)} (was folded to ${folded})`)
    if (result.ok) continue
    t.equal(result.problem, problem, JSON.stringify(input))
    t.equal(result.codePoint, codePoint)
  }
})

t.test('U+0130 (İ) lower-cases to i + combining dot: refused, not made "i"', async (t) => {
  t.notOk(checkUsername('\u0130nci').ok)
  t.same(checkUsername('ı'), { ok: true, username: 'ı' }, 'dotless i is its own letter, not "i"')
})

t.test('other unusable names', async (t) => {
  for (const bad of ['', 'a b', '.alice', 'a/b', 'a\nb', 'x'.repeat(65), '<b>', 'a\u0000', 'ad\u00ADmin', 'ad\u200Bmin']) t.notOk(checkUsername(bad).ok, JSON.stringify(bad))
  t.match(checkUsername(''), { ok: false, problem: 'empty' })
  t.match(checkUsername('a b'), { ok: false, problem: 'characters' })
})

t.test('isValidUsername: the stored form', async (t) => {
  for (const ok of ['alice', 'a.b-c_d@example.com', 'zoé', 'user+tag', '42']) t.ok(isValidUsername(ok), ok)
  for (const bad of ['', ' alice', '.alice', 'a b', 'a/b', 'a\nb', 'x'.repeat(65), '<b>']) t.notOk(isValidUsername(bad), JSON.stringify(bad))
})

t.test('every stored one-character name is reached by itself and at most one case partner, all of Unicode', async (t) => {
  // The property the rule exists for: no spelling other than a case variant reaches a stored name.
  // Names are made of characters and lower-casing works character by character (except Greek final
  // sigma, a case variant too), so checking each code point covers the names made of them.
  const reachedBy = new Map<string, string[]>()
  for (let cp = 0; cp <= 0x10FFFF; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue
    const c = String.fromCodePoint(cp)
    const result = checkUsername(c)
    if (!result.ok) continue
    const list = reachedBy.get(result.username) ?? []
    list.push(c)
    reachedBy.set(result.username, list)
  }
  t.ok(reachedBy.size > 100_000, `${reachedBy.size} stored one-character names`)
  const problems: string[] = []
  for (const [stored, inputs] of reachedBy) {
    const others = inputs.filter((c) => c !== stored)
    // the partner must be an upper- or title-case form: its lower case is the stored name, and the
    // stored name is itself accepted (so the pair is a case pair, not a foreign look-alike)
    if (others.length > 1 || (others.length === 1 && !inputs.includes(stored))) problems.push(`${stored}: ${inputs.map((c) => 'U+' + c.codePointAt(0)!.toString(16)).join(' ')}`)
  }
  t.same(problems, [])
  t.same(reachedBy.get('k'), ['K', 'k'], 'the Kelvin sign does not reach k')
  t.same(reachedBy.get('a'), ['A', 'a'], 'fullwidth and mathematical letters do not reach a')
})
