// The repository's scripts compiled to JavaScript once per test process, for the tests that start
// them as processes, many times (the CLI: ~50 starts in test/cli*.test.ts). `node <tree>/src/x.js`
// is a real process from the same sources as `node --import=tsx src/x.ts`, compiled by the same
// compiler (esbuild, found where tsx finds it, file by file as tsc lays them out), without tsx's
// loader, whose hooks every module of the child passes through: kysely alone is 280 modules, and a
// CLI command took ~2.5 s of CPU under tsx against ~0.8 s compiled (measured 2 Dec 2026).
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)))
/** What runs in a gateway or CLI process: everything under them is compiled or copied. */
const TREES = ['src', 'migrations']

interface Esbuild { build: (options: Record<string, unknown>) => Promise<unknown> }
const esbuild = createRequire(import.meta.resolve('tsx'))('esbuild') as Esbuild

let tree: Promise<string> | undefined

/** The compiled tree (made at the first call): src/ and migrations/ as .js, their other files, package.json, node_modules linked. */
async function compiledTree (): Promise<string> {
  tree ??= (async () => {
    const out = mkdtempSync(join(tmpdir(), 'authgate-compiled-'))
    process.once('exit', () => { rmSync(out, { recursive: true, force: true }) })
    const sources = TREES.flatMap((dir) => readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))))
    await esbuild.build({
      absWorkingDir: root,
      entryPoints: sources.filter((f) => f.endsWith('.ts')),
      outbase: '.',
      outdir: out,
      format: 'esm',
      platform: 'node',
      tsconfig: join(root, 'tsconfig.json'),
      logLevel: 'error'
    })
    // The pages' assets, read next to their module; package.json for the version and "type": "module".
    for (const f of [...sources.filter((f) => !f.endsWith('.ts')), 'package.json']) cpSync(join(root, f), join(out, f))
    symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'))
    return out
  })()
  return await tree
}

const inRepository = (script: string): string => relative(root, isAbsolute(script) ? script : resolve(script))

// Resolved here: a child running in an empty directory would not find a bare `tsx`.
const TSX = import.meta.resolve('tsx')

// While tap collects coverage (`npm test`; tap's own flag, which its children inherit), the children
// run through tsx as before: their coverage then maps onto src/*.ts, the only files
// scripts/coverage-scope.ts keeps; a compiled child's would be dropped. Without coverage (the
// PostgreSQL and Node 24 passes, a developer's --disable-coverage) they run compiled.
const COVERAGE = process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1'

/**
 * The arguments that make `node` run `script` (relative to the test's cwd, or absolute): a .ts file
 * under src/ or migrations/ compiled, unless coverage is collected; any other script through tsx.
 */
export async function nodeArgs (script: string): Promise<string[]> {
  const path = inRepository(script)
  const ours = TREES.some((dir) => path.startsWith(`${dir}/`)) && path.endsWith('.ts')
  if (!ours || COVERAGE) return [`--import=${TSX}`, script]
  return [join(await compiledTree(), path.replace(/\.ts$/, '.js'))]
}
