// docs/PROTOCOL.md is the project's own reference for the protocol: what upstream applications and
// operators rely on. This keeps it true and the only one: the worked signature example is recomputed
// with the gateway's signing code and the public verifier, every section of it cited (by anchor) in
// the repository names a heading that exists, and no tracked file cites a "SPEC" document that
// users never have.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { canonicalString, encodeIdentity, signIdentity, type Identity } from '../../src/identity/headers.js'
import { verifyIdentityHeaders } from '../../src/verify/index.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(new URL(path, new URL('../../', import.meta.url)), 'utf8')
const protocol = read('docs/PROTOCOL.md')

/** The text of one `## `/`### ` section (up to the next heading of any level). */
function section (markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no heading "${heading}"`)
  const rest = markdown.slice(start + heading.length + 2)
  const end = rest.search(/^#{1,3} /m)
  return end < 0 ? rest : rest.slice(0, end)
}

/** The fenced blocks of `text`, with their info string (`sh`, `http`, or ''). */
function codeBlocks (text: string): Array<{ info: string, body: string }> {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1]!, body: m[2]!.replace(/\n$/, '') }))
}

/** GitHub's anchor for a heading: lower-case, punctuation dropped, spaces as `-`. */
function anchor (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s-]/gu, '').replace(/\s/g, '-')
}

t.test('the worked signature example is what the gateway signs and authgate/verify accepts', async (t) => {
  const example = section(protocol, '### Worked example')
  const blocks = codeBlocks(example)

  const secretBlock = blocks.find((b) => b.info === 'sh' && b.body.startsWith('HEADER_SIGNING_SECRET='))
  t.ok(secretBlock, 'the example states its secret')
  const secret = secretBlock!.body.slice('HEADER_SIGNING_SECRET='.length)
  t.ok(secret.length >= 32, 'a secret the gateway would accept (at least 32 characters)')

  // The identity, from the "field | value" table: each value is one or more `code spans`.
  const fields = new Map<string, string[]>()
  for (const m of example.matchAll(/^\| (username|admin|email|full name|groups) \| (.*) \|$/gm)) {
    fields.set(m[1]!, [...m[2]!.matchAll(/`([^`]*)`/g)].map((c) => c[1]!))
  }
  const one = (name: string): string => { const v = fields.get(name); t.equal(v?.length, 1, `one value for ${name}`); return v?.[0] ?? '' }
  const identity: Identity = {
    username: one('username'),
    isAdmin: one('admin') === 'true',
    email: one('email'),
    fullName: one('full name'),
    groups: fields.get('groups') ?? []
  }
  const timestamp = Number(/signed at Unix time `(\d+)`/.exec(example)?.[1])
  t.ok(Number.isSafeInteger(timestamp), 'the example states its time')

  const headerBlock = blocks.find((b) => b.info === 'http')
  t.ok(headerBlock, 'the example shows the headers')
  const documented: Record<string, string> = {}
  for (const line of headerBlock!.body.split('\n')) {
    const m = /^([A-Za-z-]+): (.*)$/.exec(line)
    t.ok(m, `a header line: ${line}`)
    if (m !== null) documented[m[1]!.toLowerCase()] = m[2]!
  }

  // The gateway's own signing code produces exactly the documented headers ...
  t.same(signIdentity(identity, secret, timestamp), documented, 'signIdentity gives the documented headers')
  // ... from exactly the documented canonical string (the plain block in the example) ...
  const canonical = canonicalString(String(timestamp), encodeIdentity(identity))
  t.ok(blocks.some((b) => b.info === '' && b.body === canonical), 'the documented canonical string is the one signed')
  t.equal('v1=' + createHmac('sha256', secret).update(canonical).digest('hex'), documented['x-auth-signature'], 'HMAC-SHA256 of it is the signature')
  // ... the one-liner for recomputing it by hand signs the same string with the same secret ...
  const oneLiner = blocks.find((b) => b.info === 'sh' && b.body.startsWith('python3 '))?.body ?? ''
  const literals = [...oneLiner.matchAll(/b"([^"]*)"/g)].map((m) => m[1]!.replace(/\\n/g, '\n'))
  t.same(literals, [secret, canonical], 'the python3 one-liner uses the documented secret and canonical string')

  // ... and the public verifier accepts it and reads back the documented identity.
  const verified = verifyIdentityHeaders(documented, secret, { now: timestamp })
  t.same(verified, { ok: true, identity: { ...identity, timestamp } }, 'authgate/verify accepts it')
  t.equal(verifyIdentityHeaders(documented, secret, { now: timestamp + 61 }).ok, false, 'and refuses it 61 s later, as the page says')
  t.equal(verifyIdentityHeaders({ ...documented, 'x-admin': 'false' }, secret, { now: timestamp }).ok, false, 'and refuses a changed header')
})

t.test('every heading PROTOCOL.md links to, here or elsewhere, exists', async (t) => {
  const anchors = new Set([...protocol.matchAll(/^#{1,3} (.+)$/gm)].map((m) => anchor(m[1]!)))
  const files = trackedFiles()
  let citations = 0
  for (const file of files) {
    const text = file === 'docs/PROTOCOL.md' ? protocol : readText(file)
    if (text === undefined) continue
    const pattern = file === 'docs/PROTOCOL.md' ? /\]\(#([\w-]+)\)/g : /PROTOCOL\.md#([\w-]+)/g
    for (const m of text.matchAll(pattern)) {
      citations++
      t.ok(anchors.has(m[1]!), `${file}: docs/PROTOCOL.md#${m[1]!} is a heading of docs/PROTOCOL.md`)
    }
  }
  t.ok(citations >= 10, `the code and docs cite PROTOCOL.md sections (${citations} found)`)
})

t.test('no tracked file cites a SPEC document', async (t) => {
  // Built from parts so that this file does not match itself.
  const SPEC = 'SP' + 'EC'
  const patterns = [new RegExp(`\\b${SPEC}(\\.md)?\\s*§`), new RegExp(`\\b${SPEC}\\.md\\b`), new RegExp(`\\bthe ${SPEC}\\b`)]
  const files = trackedFiles()
  const offenders: string[] = []
  for (const file of files) {
    const text = readText(file)
    if (text === undefined) continue
    text.split('\n').forEach((line, i) => {
      if (patterns.some((p) => p.test(line))) offenders.push(`${file}:${i + 1}: ${line.trim()}`)
    })
  }
  t.same(offenders, [], 'cite docs/PROTOCOL.md (with its section anchor) instead: users do not have any SPEC file')
})

/** Every file git tracks (or would: new files not yet added count too), outside node_modules; fails rather than passing on an empty list. */
function trackedFiles (): string[] {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  const files = listed.stdout.split('\0').filter((f) => f !== '' && !f.split('/').includes('node_modules'))
  if (!files.includes('README.md') || !files.includes('src/identity/headers.ts')) throw new Error('git ls-files did not list the repository')
  return files
}

/** A tracked file's text, or undefined for binary files (images, fonts) and files deleted in the worktree. */
function readText (file: string): string | undefined {
  let data: Buffer
  try {
    data = readFileSync(new URL(file, new URL('../../', import.meta.url)))
  } catch {
    return undefined
  }
  return data.includes(0) ? undefined : data.toString('utf8')
}
