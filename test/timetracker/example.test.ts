// `npm run example:timetracker -- <checkout>`, run as a user runs it: the real command in its own
// process group (what a terminal's Ctrl+C reaches), TimeTracker from TIMETRACKER_DIR behind the
// real gateway, driven over HTTP, then stopped with SIGINT.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { KNOWN_VARIABLES } from '../../src/config/variables.js'
import { CookieJar, fetchWithJar, parseForms } from '../support/browserless.js'
import { findPython, requireTool } from '../support/tools.js'
import { eventually, within } from '../support/within.js'
import { startTimeTrackerExample } from '../../scripts/timetracker/run.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const checkout = process.env.TIMETRACKER_DIR
const found = checkout !== undefined && existsSync(join(checkout, 'app', '__init__.py')) ? checkout : undefined

// What `npm run example:timetracker` runs ("tsx scripts/example-timetracker.ts"), started without
// npm in between: npm and npx report a Ctrl+C as their own death by SIGINT, whatever the script's exit code.
const SCRIPT = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['example:timetracker']!
const [BIN, ...SCRIPT_ARGS] = SCRIPT.split(' ')

interface Run { child: ChildProcess, stdout: () => string, stderr: () => string, exit: Promise<number | null> }

/** The example with `args`, without the gateway variables of this test's own environment. */
function example (args: string[], env: Record<string, string> = {}, viaNpm = false): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !KNOWN_VARIABLES.has(name)))
  const [command, commandArgs] = viaNpm
    ? ['npm', ['run', '--silent', 'example:timetracker', '--', ...args]]
    : [join(ROOT, 'node_modules', '.bin', BIN!), [...SCRIPT_ARGS, ...args]]
  const child = spawn(command, commandArgs, { cwd: ROOT, env: { ...base, ...env }, detached: true })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exit = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  return { child, stdout: () => stdout, stderr: () => stderr, exit }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}

async function isFree (port: number, host: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer().once('error', () => { resolve(false) }).listen(port, host, () => { server.close(() => { resolve(true) }) })
  })
}

/** Whether something accepts connections on the port (without taking it, as a listen test would). */
async function listening (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

t.test('npm run example:timetracker without a checkout path prints its usage and exits 2', async (t) => {
  const run = example([], {}, true)
  t.equal(await within(run.exit, 60_000, 'exit'), 2)
  t.match(run.stderr(), /^usage: npm run example:timetracker -- <path to a TimeTracker checkout>/m)
})

t.test('refusals, each with what to do, exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-example-refusals-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

  const fakeCheckout = join(dir, 'tt')
  mkdirSync(join(fakeCheckout, 'app'), { recursive: true })
  writeFileSync(join(fakeCheckout, 'app', '__init__.py'), '')
  // A real python3 that sees no installed packages (-S: no site-packages).
  const python = findPython()
  if (!requireTool(t, 'python3', python, 'install python3')) return
  const bare = join(dir, 'python-without-packages')
  writeFileSync(bare, `#!/bin/sh\nexec ${python} -S "$@"\n`)
  chmodSync(bare, 0o755)

  const [notCheckout, production, noPackages] = [example([dir]), example([fakeCheckout], { NODE_ENV: 'production' }), example([fakeCheckout], { TIMETRACKER_PYTHON: bare })]
  t.equal(await within(notCheckout.exit, 60_000, 'exit'), 2)
  t.match(notCheckout.stderr(), `cannot start: ${dir} is not a TimeTracker checkout (it has no app/__init__.py)`)
  t.equal(await within(production.exit, 60_000, 'exit'), 2)
  t.match(production.stderr(), /development only and does not run with NODE_ENV=production/)
  t.equal(await within(noPackages.exit, 60_000, 'exit'), 2)
  t.match(noPackages.stderr(), `${bare} lacks TimeTracker's Python packages (flask, flask_sqlalchemy,`)
  t.match(noPackages.stderr(), /sudo apt-get install python3-flask python3-flask-sqlalchemy .*python3-gunicorn python3-eventlet/)
})

const python = findPython('import flask_login, flask_sqlalchemy, flask_socketio, flask_babel, authlib, gunicorn, eventlet')
if (requireTool(t, 'a TimeTracker checkout in TIMETRACKER_DIR', found, 'set TIMETRACKER_DIR to a TimeTracker checkout') &&
    requireTool(t, "python3 with TimeTracker's packages", python, 'see the packages example:timetracker names when it cannot start')) {
  /** The example on free ports with its own TMPDIR (to see that nothing is left behind), stopped after the test if still running. */
  const startExample = async (t: Test, env: Record<string, string> = {}): Promise<{ run: Run, tmp: string, ports: { gateway: number, timetracker: number, idp: number } }> => {
    const ports = { gateway: await freePort(), timetracker: await freePort(), idp: await freePort() }
    const tmp = mkdtempSync(join(tmpdir(), 'authgate-example-tmp-'))
    t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })
    const run = example([found], {
      GATEWAY_PORT: String(ports.gateway),
      TIMETRACKER_PORT: String(ports.timetracker),
      IDP_PORT: String(ports.idp),
      TIMETRACKER_PYTHON: python,
      TMPDIR: tmp,
      ...env
    })
    t.teardown(async () => {
      if (run.child.exitCode === null && run.child.signalCode === null) {
        process.kill(-run.child.pid!, 'SIGINT')
        await within(run.exit, 30_000, 'the example to stop after a failed test')
      }
    })
    return { run, tmp, ports }
  }

  /** What Ctrl+C must leave: exit 0, every port free, nothing in TMPDIR. */
  const stoppedCleanly = async (t: Test, { run, tmp, ports }: Awaited<ReturnType<typeof startExample>>): Promise<void> => {
    t.equal(await within(run.exit, 30_000, 'the example to stop'), 0, 'exit code 0')
    t.ok(await isFree(ports.gateway, 'localhost'), 'the gateway\'s port is free')
    t.ok(await isFree(ports.timetracker, '127.0.0.1'), 'TimeTracker\'s port is free')
    t.ok(await isFree(ports.idp, '127.0.0.1'), 'the provider\'s port is free')
    t.same(readdirSync(tmp).filter((name) => name.startsWith('authgate-')), [], 'nothing of it in TMPDIR')
  }

  t.test('TimeTracker behind the gateway, started and stopped as a user does', async (t) => {
    // The gateway's own variable, which TimeTracker reads too: for the gateway only.
    const gatewayDb = join(mkdtempSync(join(tmpdir(), 'authgate-example-db-')), 'gateway.db')
    t.teardown(() => { rmSync(dirname(gatewayDb), { recursive: true, force: true }) })
    const started = await startExample(t, { DATABASE_URL: `sqlite:${gatewayDb}` })
    const { run, tmp, ports: { gateway: gatewayPort, timetracker: timetrackerPort } } = started
    const url = `http://localhost:${gatewayPort}/`
    const ready = (): boolean => run.stdout().includes('Press Ctrl+C to stop.')
    await eventually(() => ready() || run.child.exitCode !== null, 120_000)
    if (!ready()) {
      t.fail(`not ready (exit code ${run.child.exitCode}):\n${run.stderr()}`)
      return
    }
    const out = run.stdout()
    t.match(out, `Open ${url}\n`)
    t.match(out, /development only/)
    t.match(out, /alice\s+\/ alice-demo .*groups: staff, admins\s+\(administrator\)/)
    t.match(out, /admin\s+\/ admin-demo .*\(administrator\)/)
    const dave = /^\s+dave\s+\/ (\S+)\s+(.+?)\s*$/m.exec(out)
    t.ok(dave, 'a local non-admin account is printed')
    const log = /Its output: (\S+)/.exec(out)?.[1]
    t.ok(log !== undefined && log.startsWith(tmp), 'its files are in the temporary directory')
    t.ok(existsSync(gatewayDb), 'DATABASE_URL from the environment is the gateway\'s')

    t.test('the gateway answers with its login page', async (t) => {
      const page = await fetch(`${url}login`, { headers: { accept: 'text/html' } })
      t.equal(page.status, 200)
      const body = await page.text()
      t.match(body, 'Sign in with SSO')
      t.match(body, 'id="password"')
    })

    t.test('TimeTracker answers nothing to a request without the gateway\'s headers', async (t) => {
      const direct = await fetch(`http://127.0.0.1:${timetrackerPort}/`, { redirect: 'manual' })
      t.equal(direct.status, 401)
      await direct.body?.cancel()
    })

    t.test('/_health, a skip path, reaches TimeTracker through the gateway without a session', async (t) => {
      const health = await fetch(`${url}_health`, { redirect: 'manual' })
      t.equal(health.status, 200)
      t.match(await health.json(), { status: 'healthy', timestamp: String }, 'TimeTracker\'s own answer')
    })

    t.test('a local account signs in and sees its TimeTracker dashboard', async (t) => {
      const [, password, fullName] = dave!
      const jar = new CookieJar()
      const page = await fetchWithJar(jar, `${url}login`)
      const form = parseForms(await page.text(), `${url}login`).find((f) => 'password' in f.fields)!
      t.ok(form.fields['csrf_token'], 'the form carries a CSRF token')
      const login = await fetchWithJar(jar, form.action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...form.fields, username: 'dave', password: password! }).toString()
      })
      t.equal(login.status, 303)
      t.equal(login.headers.get('location'), '/')
      const dashboard = await fetchWithJar(jar, url)
      t.equal(dashboard.status, 200)
      const html = await dashboard.text()
      t.match(html, '<title>Dashboard - Time Tracker</title>')
      t.match(html, `Welcome back, ${fullName!}`)
      // TimeTracker created its user from the gateway's identity, under the gateway's username, in its own database.
      const db = new Database(join(dirname(log!), 'timetracker.db'), { readonly: true, fileMustExist: true })
      t.teardown(() => { db.close() })
      t.same(db.prepare('SELECT username FROM users WHERE username = ?').all('dave'), [{ username: 'dave' }])
    })

    t.test('Ctrl+C stops everything and leaves nothing behind', async (t) => {
      process.kill(-run.child.pid!, 'SIGINT') // the whole foreground group, as a terminal does
      await stoppedCleanly(t, started)
      t.notOk(existsSync(dirname(log!)), 'its temporary directory is gone')
    })
  })

  t.test('Ctrl+C while it is starting stops it too', async (t) => {
    const started = await startExample(t)
    // gunicorn listens before TimeTracker is ready: then the example is mid-start.
    const deadline = Date.now() + 60_000
    while (!await listening(started.ports.timetracker) && started.run.child.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.notMatch(started.run.stdout(), 'Press Ctrl+C to stop.', 'not ready yet')
    process.kill(-started.run.child.pid!, 'SIGINT')
    await stoppedCleanly(t, started)
    t.notMatch(started.run.stdout(), 'Open http', 'it stopped instead of starting')
  })
}

if (found !== undefined && python !== undefined) {
  t.test('TimeTracker exiting before it is ready: the error carries its output, nothing is left', async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'authgate-example-tmp-'))
    const before = process.env.TMPDIR
    process.env.TMPDIR = tmp
    t.teardown(() => {
      if (before === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = before
      rmSync(tmp, { recursive: true, force: true })
    })
    const timetrackerPort = await freePort()
    const error = await startTimeTrackerExample({ checkout: found, python, timetrackerPort, logLevel: 'silent', timetrackerEnv: { HEADER_SIGNING_SECRET: '' } })
      .then(async (example) => { await example.close(); return undefined }, (err: Error) => err)
    t.match(error?.message, /^TimeTracker exited \(3\) before it was ready; its last output:\n/)
    t.match(error?.message, 'authgate_timetracker: cannot start: HEADER_SIGNING_SECRET is not set')
    t.same(readdirSync(tmp), [], 'its temporary directory is gone')
    t.ok(await isFree(timetrackerPort, '127.0.0.1'), 'TimeTracker\'s port is free')
  })
}
