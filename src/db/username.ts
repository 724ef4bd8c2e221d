// What a username is, in one place for the login form, the CLI and SSO claims. Guards against
// account takeover by folding: distinct spellings (fullwidth "ａｄｍｉｎ", the Kelvin sign in "Karl",
// ligatures, decomposed accents, surrounding spaces) must never reach one account. The only mapping
// applied is lower-casing, the documented rule (as TimeTracker); anything NFKC would change is refused.

/** A stored username: 1 to 64 letters and digits and . _ @ + -, starting with a letter or digit. */
export function isValidUsername (username: string): boolean {
  return /^[\p{L}\p{N}][\p{L}\p{N}._@+-]{0,63}$/u.test(username)
}

export type UsernameProblem = 'empty' | 'surrounding-space' | 'lookalike' | 'characters'

export type UsernameCheck =
  | { ok: true, username: string }
  /** `codePoint`: the first offending character as U+XXXX, for logs (never the whole name). */
  | { ok: false, problem: UsernameProblem, codePoint?: string }

/** The first character NFKC changes on its own, else the first combining mark (one NFKC composes). */
function offending (input: string): { codePoint?: string } {
  const c = [...input].find((c) => c.normalize('NFKC') !== c) ?? /\p{M}/u.exec(input)?.[0]
  return c === undefined ? {} : { codePoint: 'U+' + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0') }
}

/**
 * The stored name for `input`, or why there is none. Lower-casing is the only change: the result is
 * reached by `input`'s case variants and by no other spelling, because every input must already be
 * in NFKC form (which rules out compatibility characters and decomposed accents), and its lower-case
 * form must be a valid, NFKC-stable name too (U+0130 "İ" lower-cases to "i" plus a combining dot: a
 * mark, refused, rather than "i"). test/unit/username.test.ts checks this over all of Unicode.
 * Whitespace is never trimmed here: the login form trims what was typed before asking, SSO claims
 * and CLI arguments are taken as they are.
 */
export function checkUsername (input: string): UsernameCheck {
  if (input === '') return { ok: false, problem: 'empty' }
  if (input.trim() !== input) return { ok: false, problem: 'surrounding-space' }
  if (input.normalize('NFKC') !== input) return { ok: false, problem: 'lookalike', ...offending(input) }
  const username = input.toLowerCase()
  if (!isValidUsername(username)) return { ok: false, problem: 'characters' }
  if (username.normalize('NFKC') !== username) return { ok: false, problem: 'lookalike' }
  return { ok: true, username }
}

/** What the login form and the CLI say about a name they cannot use. */
export function usernameProblemMessage (problem: UsernameProblem): string {
  switch (problem) {
    case 'surrounding-space':
      return 'This username begins or ends with a space, which no username has. Type it without.'
    case 'lookalike':
      return 'This username contains characters that look like other characters (such as fullwidth letters, ligatures, the Kelvin sign or separately typed accents), so it could be mistaken for another account. Type it with ordinary letters.'
    case 'empty':
    case 'characters':
      return 'Enter a username of letters, digits and . _ @ + - (at most 64 characters).'
  }
}
