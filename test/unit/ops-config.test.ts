// METRICS_PORT, METRICS_HOST, SHUTDOWN_GRACE_PERIOD and WORKERS as loadConfig reads them.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import { loadConfig, type Env } from '../../src/config/index.js'
import { parseWorkers } from '../../src/config/operations.js'
import { configProblems } from '../support/config.js'

const secrets = { SECRET_KEY: 's'.repeat(32), HEADER_SIGNING_SECRET: 'h'.repeat(32) }
const production = { ...secrets, NODE_ENV: 'production', UPSTREAM_URL: 'http://127.0.0.1:5000', LOCAL_AUTH: 'password' }
const cwd = mkdtempSync(join(tmpdir(), 'authgate-ops-config-'))
const load = (env: Env): ReturnType<typeof loadConfig> => loadConfig(env, { cwd, dotenv: false })

t.test('metrics listener: off unless METRICS_PORT; listens where the gateway does unless METRICS_HOST', async (t) => {
  t.equal(load(secrets).metrics, undefined, 'unset: metrics stay on the public port')
  t.same(load({ ...secrets, METRICS_PORT: '9464' }).metrics, { port: 9464, host: '127.0.0.1' }, 'development: loopback, like the gateway')
  t.same(load({ ...production, METRICS_PORT: '9464' }).metrics, { port: 9464, host: '0.0.0.0' }, 'production (a pod, a container): every interface, for Prometheus')
  t.same(load({ ...production, HOST: '::1', METRICS_PORT: '9464' }).metrics, { port: 9464, host: '::1' }, 'a narrower HOST narrows it too')
  t.same(load({ ...production, METRICS_PORT: '9464', METRICS_HOST: '127.0.0.1' }).metrics, { port: 9464, host: '127.0.0.1' }, 'METRICS_HOST wins')
  t.same(load({ ...secrets, PORT: '0', METRICS_PORT: '0' }).metrics, { port: 0, host: '127.0.0.1' }, 'both ephemeral is fine')
  t.same(load({ ...secrets, METRICS_PORT: '' }).metrics, undefined, 'empty is unset')
})

t.test('metrics listener: refused settings', async (t) => {
  t.same(configProblems({ ...secrets, METRICS_PORT: '8080' }, cwd), ['METRICS_PORT'], 'PORT\'s default')
  t.same(configProblems({ ...secrets, PORT: '9000', METRICS_PORT: '9000' }, cwd), ['METRICS_PORT'])
  t.same(configProblems({ ...secrets, METRICS_PORT: '65536' }, cwd), ['METRICS_PORT'])
  t.same(configProblems({ ...secrets, METRICS_PORT: 'prometheus' }, cwd), ['METRICS_PORT'])
  t.same(configProblems({ ...secrets, METRICS_HOST: '0.0.0.0' }, cwd), ['METRICS_HOST'], 'a host without a port is a half-done setting')
  t.throws(() => load({ ...secrets, METRICS_PORT: '8080' }), /METRICS_PORT: must differ from PORT \(8080\)/)
})

t.test('SHUTDOWN_GRACE_PERIOD: seconds, 20 by default (Kubernetes kills after 30)', async (t) => {
  t.equal(load(secrets).shutdownGraceMs, 20_000)
  t.equal(load({ ...secrets, SHUTDOWN_GRACE_PERIOD: '45' }).shutdownGraceMs, 45_000)
  t.equal(load({ ...secrets, SHUTDOWN_GRACE_PERIOD: '0' }).shutdownGraceMs, 0, '0: cut at once')
  for (const bad of ['-1', '1.5', '20s', '3601']) t.same(configProblems({ ...secrets, SHUTDOWN_GRACE_PERIOD: bad }, cwd), ['SHUTDOWN_GRACE_PERIOD'], bad)
})

t.test('a misspelt one is warned about', async (t) => {
  t.same(load({ ...secrets, METRICS_PORTS: '9464', SHUTDOWN_GRACE: '5' }).unknownVariables, [
    { name: 'METRICS_PORTS', didYouMean: 'METRICS_PORT' },
    { name: 'SHUTDOWN_GRACE' }
  ])
})

t.test('WORKERS: 1 unless set; a whole number from 1 to 64, or auto', async (t) => {
  t.equal(load(production).workers, 1, 'unset: one process, no cluster')
  t.equal(load({ ...production, WORKERS: '' }).workers, 1, 'empty is unset')
  t.equal(load({ ...production, WORKERS: '4' }).workers, 4)
  t.equal(load({ ...production, WORKERS: '64' }).workers, 64)
  t.equal(load({ ...production, WORKERS: 'auto' }).workers, Math.min(availableParallelism(), 64), 'auto: one per CPU')
  t.equal(load({ ...production, WORKERS: ' Auto ' }).workers, Math.min(availableParallelism(), 64))
  for (const value of ['0', '65', '-1', '2.5', 'two', 'max']) {
    t.same(configProblems({ ...production, WORKERS: value }, cwd), ['WORKERS'], `WORKERS=${value} refused`)
  }
  t.throws(() => load({ ...production, WORKERS: '0' }), /WORKERS: must be a whole number from 1 to 64, or auto \(one per CPU: \d+ here\)/)
})

t.test('WORKERS=auto is capped at 64; more than one worker needs UPSTREAM_URL', async (t) => {
  const reader = (value: string | undefined): { get: () => string | undefined, fail: (name: string, message: string) => undefined, failures: string[] } => {
    const failures: string[] = []
    return { get: () => value, fail: (name, message) => { failures.push(`${name}: ${message}`); return undefined }, failures }
  }
  t.equal(parseWorkers(reader('auto'), true, () => 96), 64, 'a 96-CPU machine gets 64')
  t.equal(parseWorkers(reader('auto'), true, () => 2), 2)
  const demo = reader('2')
  t.equal(parseWorkers(demo, false), undefined)
  t.match(demo.failures, [/WORKERS: is 2 without UPSTREAM_URL: the built-in demo upstream runs in one process/])
  t.equal(parseWorkers(reader('1'), false), 1, 'the demo upstream with one worker, as before')
  t.same(configProblems({ ...secrets, WORKERS: '2' }, cwd), ['WORKERS'], 'development without UPSTREAM_URL: the demo upstream')
})
