// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by package.
// Percentages are of the busy samples ((idle) excluded and reported separately).
//   node --import tsx bench/profile.ts <file.cpuprofile> [top]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface CpuProfile { nodes: ProfileNode[], samples?: number[], timeDeltas?: number[], startTime: number, endTime: number }

export interface ProfileSummary {
  durationMs: number
  idlePercent: number
  functions: Array<{ name: string, where: string, percent: number }>
  packages: Array<{ name: string, percent: number }>
}

/** Where a script comes from: a package name, `node:internal`, `authgate` (this repository), or `(native)`. */
export function packageOf (url: string): string {
  if (url === '') return '(native/V8)'
  if (url.startsWith('node:')) return 'node core'
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (path.includes('/src/')) return 'authgate (src/)'
  if (path.includes('/bench/')) return 'bench/'
  return path
}

function shortWhere (url: string, line: number): string {
  if (url === '') return ''
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  const short = nm >= 0 ? path.slice(nm + '/node_modules/'.length) : path.includes('/src/') ? path.slice(path.lastIndexOf('/src/') + 1) : path
  return `${short}:${line + 1}`
}

/**
 * `window`: only samples taken between these two instants (µs of the monotonic clock, as
 * `process.hrtime.bigint() / 1000n` in any process on the machine: V8's profiler uses the same
 * clock), so that start-up and warm-up do not count.
 */
export function summarize (profile: CpuProfile, top = 25, window?: { fromUs: number, toUs: number }): ProfileSummary {
  // Self time per node: from samples + timeDeltas when present (exact), else hitCount.
  const self = new Map<number, number>()
  let durationUs = profile.endTime - profile.startTime
  if (profile.samples !== undefined && profile.timeDeltas !== undefined) {
    let t = profile.startTime
    let first: number | undefined
    let last = 0
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0
      if (window !== undefined && (t < window.fromUs || t > window.toUs)) continue
      first ??= t
      last = t
      const dt = profile.timeDeltas[i + 1] ?? 0
      self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt)
    }
    if (window !== undefined) durationUs = first === undefined ? 0 : last - first
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0)
  }
  let idle = 0
  let busy = 0
  const byFunction = new Map<string, { name: string, where: string, t: number }>()
  const byPackage = new Map<string, number>()
  for (const node of profile.nodes) {
    const t = self.get(node.id) ?? 0
    if (t === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') { idle += t; continue }
    busy += t
    const name = functionName === '' ? '(anonymous)' : functionName
    const where = shortWhere(url, lineNumber)
    const key = `${name} ${where}`
    const entry = byFunction.get(key) ?? { name, where, t: 0 }
    entry.t += t
    byFunction.set(key, entry)
    const pkg = packageOf(url)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t)
  }
  const pct = (t: number): number => busy === 0 ? 0 : 100 * t / busy
  return {
    durationMs: durationUs / 1000,
    idlePercent: idle + busy === 0 ? 0 : 100 * idle / (idle + busy),
    functions: [...byFunction.values()].sort((a, b) => b.t - a.t).slice(0, top).map((f) => ({ name: f.name, where: f.where, percent: pct(f.t) })),
    packages: [...byPackage.entries()].sort((a, b) => b[1] - a[1]).map(([name, t]) => ({ name, percent: pct(t) }))
  }
}

export function formatSummary (s: ProfileSummary): string {
  const lines = [`profile: ${(s.durationMs / 1000).toFixed(1)} s, idle ${s.idlePercent.toFixed(1)} % (percentages below are of busy time)`, '',
    '| self % | function | where |', '| ---: | --- | --- |',
    ...s.functions.map((f) => `| ${f.percent.toFixed(1)} | \`${f.name}\` | ${f.where} |`), '',
    '| self % | package |', '| ---: | --- |',
    ...s.packages.slice(0, 15).map((p) => `| ${p.percent.toFixed(1)} | ${p.name} |`)]
  return lines.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const [file, topArg] = process.argv.slice(2)
  if (file === undefined) { process.stderr.write('usage: profile.ts <file.cpuprofile> [top]\n'); process.exit(2) }
  process.stdout.write(formatSummary(summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, topArg !== undefined ? Number(topArg) : 25)) + '\n')
}
