import t from 'tap'
import { safeNextPath } from '../../src/auth/next-url.js'

// Every class of open-redirect payload from the issue, each of which must fall back to "/".
const REJECTED: Array<[string, unknown]> = [
  ['protocol-relative', '//evil.com'],
  ['protocol-relative with path', '//evil.com/path'],
  ['triple slash', '///evil.com'],
  ['backslash after slash', '/\\evil.com'],
  ['double backslash', '\\\\evil.com'],
  ['backslash only', '\\evil.com'],
  ['mixed slashes', '/\\/evil.com'],
  ['tab between slashes', '/\t/evil.com'],
  ['newline between slashes', '/\n/evil.com'],
  ['carriage return between slashes', '/\r/evil.com'],
  ['leading space', ' //evil.com'],
  ['leading tab', '\t/evil'],
  ['null byte', '/\x00/evil.com'],
  ['dot segments to //', '/a/..//evil.com'],
  ['dot segment then //', '/.//evil.com'],
  ['encoded dot segments to //', '/a/%2e%2e//evil.com'],
  ['mixed encoded dots', '/x/.%2e//evil.com'],
  ['encoded slash', '/%2fevil.com'],
  ['encoded slash upper', '/%2Fevil.com'],
  ['encoded backslash', '/%5cevil.com'],
  ['encoded backslash upper', '/%5Cevil.com'],
  ['double-encoded slash', '/%252fevil.com'],
  ['encoded tab', '/%09/evil.com'],
  ['encoded newline', '/%0a/evil.com'],
  ['encoded CR', '/%0d%0aSet-Cookie:x=1'],
  ['encoded null', '/%00/evil.com'],
  ['malformed escape', '/%zz'],
  ['truncated escape', '/a%2'],
  ['absolute https', 'https://evil.com'],
  ['absolute http', 'http://evil.com/'],
  ['scheme without slashes', 'https:evil.com'],
  ['scheme with one slash', 'https:/evil.com'],
  ['javascript', 'javascript:alert(1)'],
  ['javascript mixed case', 'JaVaScRiPt:alert(1)'],
  ['data url', 'data:text/html,<script>alert(1)</script>'],
  ['vbscript', 'vbscript:msgbox(1)'],
  ['userinfo', '//user@evil.com'],
  ['userinfo path', '/@evil.com'],
  ['userinfo with password', '/user:pass@evil.com'],
  ['fullwidth solidus', '/\uFF0Fevil.com'],
  ['fraction slash', '/\u2044evil.com'],
  ['division slash', '/\u2215evil.com'],
  ['fullwidth reverse solidus', '/\uFF3Cevil.com'],
  ['unicode lookalike domain', '/ẹvil'],
  ['non-breaking space', '/\u00a0/evil.com'],
  ['zero width space', '/\u200b/evil.com'],
  ['relative without slash', 'evil.com'],
  ['dot relative', './evil'],
  ['parent relative', '../evil'],
  ['empty', ''],
  ['too long', '/' + 'a'.repeat(3000)],
  ['not a string: array', ['/a', '/b']],
  ['not a string: number', 42],
  ['not a string: undefined', undefined],
  ['login loop', '/login'],
  ['logout', '/logout'],
  ['oidc callback', '/auth/oidc/callback?code=x'],
  ['gateway machinery', '/_authgate/metrics']
]

const ACCEPTED: Array<[string, string]> = [
  ['/', '/'],
  ['/dashboard', '/dashboard'],
  ['/projects/42?tab=time&sort=desc', '/projects/42?tab=time&sort=desc'],
  ['/a/b/../c', '/a/c'],
  ['/reports#week', '/reports#week'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/search?q=a%2Fb', '/search?q=a%2Fb'],
  ['/loginx', '/loginx']
]

t.test('open-redirect payloads fall back to /', async (t) => {
  t.ok(REJECTED.length >= 40, `${REJECTED.length} payloads`)
  for (const [name, payload] of REJECTED) {
    t.equal(safeNextPath(payload), '/', name)
  }
})

t.test('same-origin relative paths are kept (normalised)', async (t) => {
  for (const [input, expected] of ACCEPTED) t.equal(safeNextPath(input), expected, input)
})

t.test('a normalised result never starts with //', async (t) => {
  for (const [, payload] of REJECTED) t.notOk(safeNextPath(payload).startsWith('//'))
})
