// Prepares the V8 coverage that `tap` left in .tap/coverage (one file per Node process: every test
// file and every Node child it spawned) for `tap report`, which prints it and checks package.json's
// thresholds. `npm test` runs tap, then this, then `tap report`. It runs after tap, not as tap's
// `after` script: tap runs that once its own report is done.
//
// 1. Scope: only shipped code counts: src/, migrations/, packages/*/ (the verifier, as its dist/).
//    Test support and what children load from scripts/ (the demo IdP, TimeTracker) or bench/ go.
// 2. Source maps: tsx, which loads the .ts files, leaves the original's text out of its source maps
//    (unless NODE_V8_COVERAGE is set; tap collects coverage through an inspector session instead),
//    as `sourcesContent: [null]`. The report's v8-to-istanbul takes that null for the whole .ts file:
//    every file counted as one covered line, and the thresholds measured almost nothing. Without the
//    null it reads the .ts file from disk, where the map's `sources` points.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

interface ScriptCoverage { url: string }
interface SourceMapEntry { data?: { sourcesContent?: Array<string | null> } }
interface ProcessCoverage { result: ScriptCoverage[], 'source-map-cache'?: Record<string, SourceMapEntry> }

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const dir = join(root, '.tap', 'coverage')
const scope = ['src', 'migrations', 'packages'].map((d) => join(root, d) + sep)

function inScope (url: string): boolean {
  if (!url.startsWith('file:')) return false
  const path = fileURLToPath(url.replace(/[?#].*$/, ''))
  return scope.some((d) => path.startsWith(d)) && !path.includes(`${sep}node_modules${sep}`)
}

let files: string[] = []
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.json'))
} catch {
  // tap --disable-coverage, or no test ran: nothing to prepare (tap report then says so).
}

for (const f of files) {
  const path = join(dir, f)
  const cov = JSON.parse(readFileSync(path, 'utf8')) as ProcessCoverage
  cov.result = cov.result.filter((s) => inScope(s.url))
  const maps = cov['source-map-cache'] ?? {}
  for (const [url, entry] of Object.entries(maps)) {
    if (!inScope(url)) {
      delete maps[url]
    } else if (entry.data?.sourcesContent?.every((c) => c === null) === true) {
      delete entry.data.sourcesContent
    }
  }
  writeFileSync(path, JSON.stringify(cov) + '\n')
}
