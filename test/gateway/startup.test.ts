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

function start (cwd: string, env: Record<string, string>): { child: ChildProcess, output: () => string, exited: Promise<number> } {
  const child = spawn(process.execPath, [`--import=${TSX}`, MAIN], { cwd, env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d) => { out += String(d) })
  child.stderr!.on('data', (d) => { out += String(d) })
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => { resolve(code ?? -1) }))
  return { child, output: () => out, exited }
}

t.test('with nothing configured: demo upstream, sign-in, verified signature', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-start-'))
  const { child, output, exited } = start(cwd, {})
  t.teardown(() => { child.kill('SIGTERM') })
  let url: string | undefined
  for (let i = 0; i < 200 && url === undefined; i++) {
    url = /authgate listening on (http:\/\/[^"\s]+)/.exec(output())?.[1]
    if (url === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(url, 'listening')
  const base = url!.replace('localhost', '127.0.0.1')
  t.match(output(), /development secrets generated/)
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
