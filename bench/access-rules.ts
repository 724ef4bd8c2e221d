// Micro-benchmark of the ACCESS_RULES check alone (src/policy/access-rules.ts `checkAccess`), which
// runs on every signed-in proxied request: time per call and bytes allocated per call, for typical
// and hostile paths, with 1, 10 and 100 rules. bench/proxy.ts (`real-rules` against `real`) gives
// the same check's cost end to end. See docs/PERFORMANCE.md, "Access rules: cost per request".
//
//   npm run bench:access-rules -- [--runs 7] [--json out.json]
//
// Time: after a warm-up (the JIT), `runs` rounds of a fixed number of calls; the median ns per call.
// Allocation: v8.GCProfiler records every collection during a run of calls, so the bytes allocated
// are the heap's growth plus what each collection freed (exact even when a scavenge runs mid-loop).
// Paths are passed as the gateway passes them: after its request-target normaliser.
import { GCProfiler, getHeapStatistics } from 'node:v8'
import { execFileSync } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { checkAccess, parseAccessRules, pathReadings, type AccessRule, type Subject } from '../src/policy/access-rules.js'
import { normalizeRequestTarget } from '../src/proxy/access.js'
import { BENCH_USER, PATH_UNDER_RULE, TEN_RULES } from './access-rules-fixture.js'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    json: { type: 'string' }
  }
})
const runs = Number(args.runs)

function rules (value: string): AccessRule[] {
  const parsed = parseAccessRules(value)
  if (!parsed.ok) throw new Error(parsed.problems.join('\n'))
  return parsed.rules
}

// The signed-in user of bench/proxy.ts (sessionSubject of a local account): no groups; passes /reports by name.
const subject: Subject = { username: BENCH_USER, isAdmin: false, email: null, emailVerified: true, groups: [] }

const hundred = [TEN_RULES, ...Array.from({ length: 90 }, (_, i) => `/projects/p${i}/settings=group:project-${i},user:owner-${i}`)].join(';')
const ruleSets: Array<[string, AccessRule[]]> = [
  ['1 rule', rules('/reports=group:finance,user:alice,user:bench-user')],
  ['10 rules', rules(TEN_RULES)],
  ['100 rules', rules(hundred)]
]

const normalised = (raw: string): string => normalizeRequestTarget(raw)!.path
const paths: Array<[string, string]> = [
  ['plain path, no rule covers it', normalised('/timesheet/2026/week-12')],
  ['plain path under a rule (passes)', normalised(PATH_UNDER_RULE)],
  ['path with %20 under a rule (passes)', normalised('/reports/annual%20summary.pdf')],
  ['hostile: encodings, ;params, //, \\ (checked)', normalised('/x/%252e%252e/%2e%2e;a//%5c..%5cREPORTS/%2561dmin%3bx')],
  ['hostile: > 256 spellings (refused)', normalised('/%253b%255c//a%25255c%5c%5c%25253b%255c%25252f//%25252f%3b%5c%255c.')]
]

/** Calls per timed round: enough for ~20 ms per round on the cheap cases, fewer for the costly ones. */
function callsFor (path: string): number {
  const readings = pathReadings(path)
  return readings === undefined ? 2_000 : readings.length > 1 ? 50_000 : 1_000_000
}

let sink = 0
function loop (ruleSet: readonly AccessRule[], path: string, calls: number): void {
  for (let i = 0; i < calls; i++) if (checkAccess(ruleSet, path, subject).ok) sink++
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc (npm run bench:access-rules does)')

function nsPerCall (ruleSet: readonly AccessRule[], path: string, calls: number): number {
  const samples: number[] = []
  for (let round = 0; round < runs; round++) {
    const t0 = process.hrtime.bigint()
    loop(ruleSet, path, calls)
    samples.push(Number(process.hrtime.bigint() - t0) / calls)
  }
  samples.sort((a, b) => a - b)
  return samples[samples.length >> 1]!
}

function bytesPerCall (ruleSet: readonly AccessRule[], path: string, calls: number): number {
  gc!()
  const profiler = new GCProfiler()
  profiler.start()
  const before = getHeapStatistics().used_heap_size
  loop(ruleSet, path, calls)
  const after = getHeapStatistics().used_heap_size
  const { statistics } = profiler.stop()
  const freed = statistics.reduce((sum, s) => sum + s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize, 0)
  return (after - before + freed) / calls
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ')
const machine = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
  uptime: (() => { try { return execFileSync('uptime').toString().trim() } catch { return '' } })()
}
console.log('# ACCESS_RULES check (checkAccess), alone\n')
console.log(`date ${machine.date}; node ${machine.node}; ${machine.cpus}`)
console.log(`uptime: ${machine.uptime}`)
console.log(`median of ${runs} timed rounds after a warm-up; allocation from v8.GCProfiler over one round\n`)

// The harness's own cost: the same loop around a check with no rules (returns at once).
const empty: AccessRule[] = []
loop(empty, '/', 1_000_000)
const baselineNs = nsPerCall(empty, '/', 1_000_000)
const baselineBytes = bytesPerCall(empty, '/', 1_000_000)
console.log(`no rules at all (harness baseline): ${baselineNs.toFixed(1)} ns/call, ${baselineBytes.toFixed(1)} bytes/call\n`)

console.log('| path | rules | readings | decision | ns/call (median) | bytes allocated/call |')
console.log('| --- | --- | ---: | --- | ---: | ---: |')
const results: Array<Record<string, unknown>> = []
for (const [pathName, path] of paths) {
  for (const [rulesName, ruleSet] of ruleSets) {
    const calls = callsFor(path)
    loop(ruleSet, path, Math.max(calls / 5, 1_000)) // warm-up
    const ns = nsPerCall(ruleSet, path, calls)
    const bytes = bytesPerCall(ruleSet, path, calls)
    const decision = checkAccess(ruleSet, path, subject)
    const readings = pathReadings(path)?.length ?? null
    const decisionText = decision.ok ? 'allowed' : `${decision.reason}`
    results.push({ path: pathName, normalisedPath: path, rules: ruleSet.length, readings, decision: decisionText, calls, nsPerCall: ns, bytesPerCall: bytes })
    console.log(`| ${pathName} | ${rulesName} | ${readings ?? '> 256'} | ${decisionText} | ${ns.toFixed(ns < 1000 ? 1 : 0)} | ${bytes.toFixed(bytes < 100 ? 1 : 0)} |`)
  }
}
console.log(`\nloadavg at end: ${load()}`)
if (sink === 0) console.log('(no call allowed)')

if (args.json !== undefined) {
  writeFileSync(args.json, JSON.stringify({ machine, loadavgAtEnd: load(), runs, baseline: { nsPerCall: baselineNs, bytesPerCall: baselineBytes }, results }, null, 2) + '\n')
}
