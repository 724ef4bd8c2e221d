// `npm start` as a newcomer runs it: nothing configured gives a working demo with generated,
// persisted secrets; NODE_ENV=production with nothing configured refuses to start, naming every fix.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { http, loginLocal, cookieHeader } from '../support/http.js'

const MAIN = resolve('src/main.ts')
// Resolved here: the child runs in an empty directory where a bare `tsx` would not be found.
const TSX = import.meta.resolve('tsx')

/** A variable set to undefined is left out (HOST: undefined shows the default). */
function start (cwd: string, env: Record<string, string | undefined>): { child: ChildProcess, output: () => string, exited: Promise<number> } {
  const merged = Object.entries({ PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }).filter((e): e is [string, string] => e[1] !== undefined)
  const child = spawn(process.execPath, [`--import=${TSX}`, MAIN], { cwd, env: Object.fromEntries(merged), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d) => { out += String(d) })
  child.stderr!.on('data', (d) => { out += String(d) })
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => { resolve(code ?? -1) }))
  return { child, output: () => out, exited }
}

async function listeningUrl (output: () => string): Promise<string | undefined> {
  let url: string | undefined
  for (let i = 0; i < 400 && url === undefined; i++) {
    url = /authgate listening on (http:\/\/[^"\s]+)/.exec(output())?.[1]
    if (url === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return url
}

const cwd = mkdtempSync(join(tmpdir(), 'authgate-start-'))

t.test('with nothing configured: demo upstream, sign-in, verified signature', async (t) => {
  const { child, output, exited } = start(cwd, { HOST: undefined })
  t.teardown(() => { child.kill('SIGTERM') })
  const url = await listeningUrl(output)
  t.ok(url, 'listening')
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'development without HOST: loopback only')
  const base = url!.replace('localhost', '127.0.0.1')
  t.match(output(), /development secrets generated/)
  t.notMatch(output(), /development secrets loaded/)
  t.notMatch(output(), /unknown variable/i)
  t.match(output(), /DEMO upstream/)
  t.match(output(), /anyone who can reach this port can sign in as any user/)
  t.ok(existsSync(join(cwd, 'data', 'dev-secrets.json')), 'secrets persisted in ./data')
  t.ok(existsSync(join(cwd, 'data', 'authgate.db')), 'SQLite database in ./data')

  const { cookies } = await loginLocal(base, 'newcomer')
  const demo = await http(`${base}/`, { headers: { cookie: cookieHeader(cookies), accept: 'text/html' } })
  t.equal(demo.status, 200)
  t.match(demo.body, /Demo upstream/)
  t.match(demo.body, /Signature verified/)
  t.match(demo.body, /<dd>newcomer<\/dd>/)
  t.notMatch(output(), new RegExp(cookies.authgate!.slice(0, 20).replace(/[^\w]/g, '.')), 'the session cookie is not logged')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'clean shutdown on SIGTERM')
})

t.test('a second start: secrets loaded (not generated), typos and TRUST_PROXY=true warned about', async (t) => {
  const { child, output, exited } = start(cwd, { UPSTREAM_ULR: 'http://127.0.0.1:9', AUTH_METOD: 'oidc', TRUST_PROXY: 'true' })
  t.teardown(() => { child.kill('SIGTERM') })
  t.ok(await listeningUrl(output), 'listening')
  t.match(output(), /development secrets loaded from/)
  t.notMatch(output(), /development secrets generated/)
  const warning = output().split('\n').filter((line) => /unknown variable/i.test(line))
  t.equal(warning.length, 1, 'one line for all of them')
  t.match(warning[0], /AUTH_METOD \(did you mean AUTH_METHOD\?\), UPSTREAM_ULR \(did you mean UPSTREAM_URL\?\)/)
  t.match(output(), /DEMO upstream/, 'the typo left the demo upstream in place, which the warning explains')
  t.match(output(), /TRUST_PROXY=true.*X-Forwarded-For/, 'trusting every peer is warned about')
  child.kill('SIGTERM')
  t.equal(await exited, 0)
})

t.test('the README\'s old "set at least" recipe, without LOCAL_AUTH, refuses to start', async (t) => {
  const prod = mkdtempSync(join(tmpdir(), 'authgate-prod-'))
  const { child, output, exited } = start(prod, { NODE_ENV: 'production', UPSTREAM_URL: 'http://127.0.0.1:9', SECRET_KEY: 'k'.repeat(48), HEADER_SIGNING_SECRET: 'h'.repeat(48), TRUST_PROXY: '1' })
  t.teardown(() => { child.kill('SIGTERM') })
  const outcome = await Promise.race([exited, listeningUrl(output).then((url) => url !== undefined ? 'listening' : 'silent')])
  t.equal(outcome, 2, 'exits with the configuration error code instead of listening')
  t.match(output(), /LOCAL_AUTH: .*anyone who reaches the port/)
  t.match(output(), /TRUST_PROXY: .*hop count/)
  t.notMatch(output(), /listening/)
})

t.test('NODE_ENV=production with nothing configured refuses to start', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-prod-'))
  const { output, exited } = start(cwd, { NODE_ENV: 'production' })
  t.equal(await exited, 2)
  t.match(output(), /UPSTREAM_URL: is required when NODE_ENV=production/)
  t.match(output(), /SECRET_KEY: is required/)
  t.match(output(), /HEADER_SIGNING_SECRET: is required/)
  t.notMatch(output(), /\n\s+at /, 'no stack trace')
  t.notOk(existsSync(join(cwd, 'data')), 'nothing generated')
})
