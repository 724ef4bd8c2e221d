// `npm run bench` works on a fresh clone: bench/proxy.ts run for a second per target on the origin,
// the gateway (src/main.ts through tsx, so that no build is needed) and the WebSocket echo, with the
// JavaScript load generator (wrk, nginx and Caddy may be missing). Only that it ran and what it
// wrote are checked; its figures are a benchmark's business, not a test's.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runNode } from '../support/process.js'

interface Results {
  summary: Array<{ target: string, rps: number, unexpected: number, cpuUsPerReq: number }>
  goals: Array<{ goal: string, verdict: string }>
  logErrors: string[]
}

t.test('the benchmark runs the origin, the gateway and a WebSocket echo, and writes its results', async (t) => {
  const results = mkdtempSync(join(tmpdir(), 'authgate-bench-test-'))
  t.teardown(() => { rmSync(results, { recursive: true, force: true }) })
  const run = await runNode('bench/proxy.ts', [
    '--targets', 'origin,authgate,ws-origin,ws-authgate', '--duration', '1', '--reps', '1', '--warmup', '0', '--settle', '0',
    '--connections', '4', '--entry', 'tsx', '--results', results
  ], { env: { ...process.env, BENCH_LOADGEN: 'node' } })
  t.equal(run.code, 0, `exit 0\n${run.stdout}\n${run.stderr}`)
  t.match(run.stdout, /sanity: every target answered; the gateway's requests reached the origin signed/)

  const date = new Date().toISOString().slice(0, 10)
  const json = JSON.parse(readFileSync(join(results, `${date}-bench.json`), 'utf8')) as Results
  t.same(json.summary.map((r) => r.target), ['origin', 'authgate', 'ws-origin', 'ws-authgate'])
  for (const row of json.summary) {
    t.ok(row.rps > 0, `${row.target}: requests went through`)
    t.equal(row.unexpected, 0, `${row.target}: every status as expected`)
    t.ok(row.cpuUsPerReq > 0, `${row.target}: CPU time read from /proc`)
  }
  t.same(json.logErrors, [])
  t.match(json.goals.find((g) => g.goal.includes('Caddy'))?.verdict, /^not measured/)
  const table = readFileSync(join(results, `${date}-bench.md`), 'utf8')
  t.match(table, /\| \*\*authgate, authenticated\*\* \| [\d,]+ \| 1\.00 \|/)
  t.match(table, /\| issue 16 target \| measured \| \|/)
})
