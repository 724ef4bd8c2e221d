// The production recipes in the docs are what operators copy. Each one, copied as written, must start
// (loadConfig accepts it) and must give a protected deployment: production mode, a real upstream, and
// a sign-in that needs more than typing a name. The README's "set at least" recipe once started with
// LOCAL_AUTH=username, where anyone who reached the port could sign in as admin.
import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { loadConfig, type Config } from '../../src/config/index.js'

interface Snippet { where: string, assignments: Array<[string, string]> }

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
/** NAME=value, the value up to a trailing comment (it may hold spaces: $(openssl rand -base64 48)). */
const ASSIGNMENT = /^(?:export\s+)?([A-Z][A-Z0-9_]*)=(.*?)(?:\s+#.*)?$/

/** Every ```sh block of a Markdown file that sets NODE_ENV=production. */
function markdownSnippets (path: string): Snippet[] {
  const blocks = [...read(path).matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1]!)
  return blocks.filter((b) => /^NODE_ENV=production\b/m.test(b)).map((block, i) => ({
    where: `${path} (production block ${i + 1})`,
    assignments: block.split('\n').map((line) => ASSIGNMENT.exec(line.trim())).filter((m) => m !== null).map((m) => [m[1]!, m[2]!] as [string, string])
  }))
}

/** The systemd unit: its example /etc/authgate/authgate.env (in comments) plus its Environment= lines. */
function systemdSnippet (path: string): Snippet {
  const text = read(path)
  const envFile = /authgate\.env\b.*\n((?:#\s{3,}[A-Z][A-Z0-9_]*=.*\n)+)/.exec(text)?.[1] ?? ''
  const assignments = envFile.split('\n').map((l) => ASSIGNMENT.exec(l.replace(/^#\s*/, ''))).filter((m) => m !== null).map((m) => [m[1]!, m[2]!] as [string, string])
  for (const m of text.matchAll(/^Environment=([A-Z][A-Z0-9_]*)=(\S*)$/gm)) assignments.push([m[1]!, m[2]!])
  return { where: path, assignments }
}

/** The environment as the operator would have it: generated secrets, and the files the _FILE variables name. */
function materialise (snippet: Snippet, cwd: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, raw] of snippet.assignments) {
    let value = raw.replace(/^\$\(openssl rand -base64 48\)$/, () => randomBytes(48).toString('base64'))
    if (name.endsWith('_FILE')) {
      const file = join(cwd, basename(value.replace('%d/', '')))
      writeFileSync(file, randomBytes(48).toString('base64') + '\n')
      value = file
    }
    env[name] = value
  }
  return env
}

function isProtected (c: Config): boolean {
  return c.production && c.upstreamUrl !== undefined && (c.authMethod === 'oidc' || c.localAuth === 'password')
}

const snippets = [
  ...markdownSnippets('README.md'),
  ...markdownSnippets('docs/DEPLOY.md'),
  ...markdownSnippets('docs/UPSTREAM.md'),
  ...markdownSnippets('docs/TIMETRACKER.md'),
  systemdSnippet('config/authgate.service')
]

t.test('the docs have production recipes to check', async (t) => {
  for (const path of ['README.md', 'docs/DEPLOY.md', 'docs/UPSTREAM.md', 'docs/TIMETRACKER.md', 'config/authgate.service']) {
    t.ok(snippets.some((s) => s.where.startsWith(path) && s.assignments.length >= 4), path)
  }
})

for (const snippet of snippets) {
  t.test(`${snippet.where}, copied, gives a protected deployment`, async (t) => {
    const cwd = mkdtempSync(join(tmpdir(), 'authgate-snippet-'))
    const env = materialise(snippet, cwd)
    t.equal(env.NODE_ENV, 'production')
    const config = loadConfig(env, { cwd, dotenv: false })
    t.ok(isProtected(config), `protected: NODE_ENV=production, UPSTREAM_URL set, AUTH_METHOD=oidc or LOCAL_AUTH=password (got AUTH_METHOD=${config.authMethod}, LOCAL_AUTH=${config.localAuth})`)
    t.same(config.unknownVariables, [], 'no misspelt variables')
  })
}

t.test('env.example and the Dockerfile name the sign-in choice production needs', async (t) => {
  for (const path of ['env.example', 'Dockerfile']) {
    const text = read(path)
    t.match(text, /LOCAL_AUTH=password/, `${path}: LOCAL_AUTH=password`)
    t.match(text, /AUTH_METHOD=oidc/, `${path}: or AUTH_METHOD=oidc`)
  }
  t.notMatch(read('env.example'), /hop count(?! is refused)/, 'env.example no longer offers a hop count')
  t.match(read('Dockerfile'), /^ENV .*HOST=0\.0\.0\.0/m, 'the image still listens on every interface (its HEALTHCHECK and published port need it)')
})
