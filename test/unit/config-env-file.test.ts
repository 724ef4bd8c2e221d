// The .env syntax the docs promise (env.example, `authgate secrets generate >> .env`, the README), read
// by node:util's parseEnv. Node 20's and Node 24's parseEnv differ on malformed lines (Node 20 glues a
// line without `=` onto the next variable's name, losing that variable), so such lines are refused on
// both. scripts/ci/test-on-node.sh runs this file on Node 24 as well.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseEnvFile, readEnvironment } from '../../src/config/environment.js'
import { parseSigningKey } from '../../src/identity/jwt-keys.js'

const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString().trim()

// [what, file text, the variables read]
const forms: Array<[string, string, Record<string, string>]> = [
  ['plain', 'PORT=9999', { PORT: '9999' }],
  ['spaces around = and the value', 'PORT = 9999 ', { PORT: '9999' }],
  ['a value with spaces', 'APP_NAME=Time Tracker', { APP_NAME: 'Time Tracker' }],
  ['empty (a list variable set to empty)', 'ADMIN_USERNAMES=\nAPP_NAME=x', { ADMIN_USERNAMES: '', APP_NAME: 'x' }],
  ['empty with a comment (env.example, uncommented)', 'SECRET_KEY=                    # >= 32 chars', { SECRET_KEY: '' }],
  ['a trailing comment (env.example, uncommented)', 'UPSTREAM_URL=http://127.0.0.1:5000   # unset in development', { UPSTREAM_URL: 'http://127.0.0.1:5000' }],
  ['# starts a comment even without a space before it (quote such a value)', 'APP_NAME=a#b', { APP_NAME: 'a' }],
  ['comment lines and blank lines (env.example)', '# PORT=8080\n\n   # indented\nHOST=0.0.0.0\n   # indented\n\nPORT=1', { HOST: '0.0.0.0', PORT: '1' }],
  ['a # line inside a quoted value is the value', 'APP_NAME="a\n# b"\nPORT=1', { APP_NAME: 'a\n# b', PORT: '1' }],
  ['double quotes', 'APP_NAME="Time Tracker"', { APP_NAME: 'Time Tracker' }],
  ['single quotes', "APP_NAME='Time Tracker'", { APP_NAME: 'Time Tracker' }],
  ['# inside quotes', 'APP_NAME="a # b"\nLOG_LEVEL=\'c # d\'', { APP_NAME: 'a # b', LOG_LEVEL: 'c # d' }],
  ['a comment after a quoted value', 'APP_NAME="Time Tracker" # shown on the login page', { APP_NAME: 'Time Tracker' }],
  ['export prefix', 'export PORT=9999', { PORT: '9999' }],
  ['CRLF line ends', 'PORT=9999\r\nHOST=::1\r\n', { PORT: '9999', HOST: '::1' }],
  ['a byte order mark (Windows editors)', '\uFEFFPORT=9999\nHOST=::1', { PORT: '9999', HOST: '::1' }],
  ['= in the value (base64)', 'SECRET_KEY=ab+/cd==', { SECRET_KEY: 'ab+/cd==' }],
  ['the last of a repeated name', 'PORT=1\nPORT=2', { PORT: '2' }],
  ['an unterminated quote is part of a one-line value', 'APP_NAME="x\nPORT=9999', { APP_NAME: '"x', PORT: '9999' }],
  ['PEM, several lines in double quotes', `IDENTITY_JWT_KEY="${pem}"\nPORT=9999`, { IDENTITY_JWT_KEY: pem, PORT: '9999' }],
  ['PEM, several lines in single quotes', `IDENTITY_JWT_KEY='${pem}'\nPORT=9999`, { IDENTITY_JWT_KEY: pem, PORT: '9999' }],
  ['PEM on one line with literal \\n (authgate secrets generate)', `IDENTITY_JWT_KEY=${pem.replace(/\n/g, '\\n')}`, { IDENTITY_JWT_KEY: pem.replace(/\n/g, '\\n') }],
  ['PEM on one line, \\n in double quotes', `IDENTITY_JWT_KEY="${pem.replace(/\n/g, '\\n')}"`, { IDENTITY_JWT_KEY: pem }]
]

t.test('every documented form reads the same on this Node (' + process.version + ')', async (t) => {
  for (const [what, text, expected] of forms) {
    t.same(parseEnvFile(text), { values: expected, strayLines: [] }, what)
  }
  // Both PEM forms are keys the gateway accepts.
  for (const value of [pem, pem.replace(/\n/g, '\\n')]) t.type(parseSigningKey(value), 'object')
})

// [what, file text, the stray lines]
const malformed: Array<[string, string, number[]]> = [
  ['a line without =, before a variable', 'JUNK\nNODE_ENV=production', [1]],
  ['a line without =, after a comment', '# settings\nSECRET_KEY\nNODE_ENV=production', [2]],
  ['a YAML-style line', 'PORT: 9999\nNODE_ENV=production', [1]],
  ['no name', '=x\nNODE_ENV=production', [1]],
  ['a name with a space', 'NODE ENV=production', [1]],
  ['several', 'a\nPORT=1\nb c\n', [1, 3]]
]

t.test('a line that is not NAME=value, a comment or blank is refused, with its number', async (t) => {
  for (const [what, text, lines] of malformed) t.same(parseEnvFile(text).strayLines, lines, what)
  // Lines inside a quoted value are the value, not stray lines.
  t.same(parseEnvFile(`IDENTITY_JWT_KEY="${pem}"\nPORT=1`).strayLines, [], 'PEM lines in quotes')

  const cwd = mkdtempSync(join(tmpdir(), 'authgate-envfile-'))
  writeFileSync(join(cwd, '.env'), '# production\nSECRET_KEY\nNODE_ENV=production\n')
  const { problems } = readEnvironment({}, { cwd })
  t.same(problems, [{ name: '.env', message: 'line 2 is not NAME=value, a # comment or blank; fix or remove it (see env.example)' }],
    'startup stops naming .env and the line (never its text: it may hold a secret)')
})

t.test('env.example copied to .env, and with every variable uncommented, reads as it says', async (t) => {
  const example = readFileSync(new URL('../../env.example', import.meta.url), 'utf8')
  t.same(parseEnvFile(example), { values: {}, strayLines: [] }, 'as shipped: all comments')
  // "# NAME=value   # comment" -> "NAME=value   # comment": the operator's first edit.
  const uncommented = example.replace(/^# ([A-Z][A-Z0-9_]*=)/gm, '$1')
  const expected: Record<string, string> = {}
  for (const m of example.matchAll(/^# ([A-Z][A-Z0-9_]*)=(.*)$/gm)) expected[m[1]!] = m[2]!.replace(/\s+#.*$/, '').trim()
  t.ok(Object.keys(expected).length > 30, 'env.example lists the variables')
  t.same(parseEnvFile(uncommented), { values: expected, strayLines: [] })
})
