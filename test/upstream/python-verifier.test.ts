// The Python reference verifier (integrations/flask/, standard library only) against headers the
// live gateway really sent, then a real Flask upstream behind the gateway, then the Python suite.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { findPython, requireTool } from '../support/tools.js'

const FLASK_DIR = fileURLToPath(new URL('../../integrations/flask/', import.meta.url))
const VERIFIER = FLASK_DIR + 'authgate_verify.py'
const env = { ...process.env, HEADER_SIGNING_SECRET, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' }

interface Run { status: number | null, stdout: string, stderr: string }
function verify (python: string, headers: Record<string, unknown>, extra: string[] = []): Run {
  const r = spawnSync(python, [VERIFIER, '--secret-env', 'HEADER_SIGNING_SECRET', ...extra], { input: JSON.stringify(headers), env, encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const python = findPython()
if (requireTool(t, 'python3 (>= 3.9)', python, 'apt-get install python3')) {
  const upstream = await startUpstream()
  const gateway = await startGateway({}, { upstream: upstream.url })
  t.teardown(async () => { await gateway.close(); await upstream.close() })
  await gateway.users.create({ username: 'zoë', fullName: 'Zoë O\'Brien, Jr. 日本', email: 'zoe+tt@example.com', isAdmin: true })
  const cookie = cookieHeader((await loginLocal(gateway.url, 'zoë')).cookies)
  t.equal((await http(gateway.url + '/tt', { headers: { cookie } })).status, 200)
  const sent = upstream.received.at(-1)!.headers
  const identity: Record<string, string> = {}
  for (const name of ['x-user', 'x-admin', 'x-email', 'x-full-name', 'x-groups', 'x-auth-timestamp', 'x-auth-signature']) {
    if (typeof sent[name] === 'string') identity[name] = sent[name]
  }

  t.test('accepts the headers the gateway sent', async (t) => {
    const r = verify(python, { ...identity, host: 'ignored' })
    t.equal(r.status, 0, r.stderr)
    t.match(JSON.parse(r.stdout), { username: 'zoë', is_admin: true, email: 'zoe+tt@example.com', full_name: 'Zoë O\'Brien, Jr. 日本', groups: [] })
    t.equal(verify(python, Object.fromEntries(Object.entries(identity).map(([k, v]) => [k.toUpperCase(), v]))).status, 0, 'header names in any case')
  })

  t.test('rejects changed, missing, repeated or stale headers', async (t) => {
    const cases: Array<[string, Record<string, unknown>, string[], string]> = [
      ['X-Admin flipped', { ...identity, 'x-admin': 'false' }, [], 'bad_signature'],
      ['X-User changed', { ...identity, 'x-user': 'admin' }, [], 'bad_signature'],
      ['X-Email changed', { ...identity, 'x-email': 'attacker%40example.com' }, [], 'bad_signature'],
      ['X-Groups added', { ...identity, 'x-groups': 'admins' }, [], 'bad_signature'],
      ['timestamp moved', { ...identity, 'x-auth-timestamp': String(Number(identity['x-auth-timestamp']) + 1) }, [], 'bad_signature'],
      ['signature of another secret', { ...identity, 'x-auth-signature': 'v1=' + 'ab'.repeat(32) }, [], 'bad_signature'],
      ['no signature', { ...identity, 'x-auth-signature': undefined }, [], 'missing_signature'],
      ['repeated X-User', { ...identity, 'x-user': [identity['x-user'], 'admin'] }, [], 'duplicate_header'],
      ['stale', identity, ['--now', String(Number(identity['x-auth-timestamp']) + 61)], 'stale_timestamp'],
      ['nothing at all', {}, [], 'no_identity']
    ]
    for (const [name, headers, extra, reason] of cases) {
      const r = verify(python, JSON.parse(JSON.stringify(headers)) as Record<string, unknown>, extra)
      t.equal(r.status, 1, name)
      t.equal(r.stdout, '', `${name}: nothing on stdout`)
      t.match(r.stderr, new RegExp(`^${reason}: `), `${name}: ${reason}`)
    }
  })

  t.test('signs exactly as the gateway does', async (t) => {
    const r = spawnSync(python, [VERIFIER, '--sign', '--secret-env', 'HEADER_SIGNING_SECRET'], {
      input: JSON.stringify({ username: 'zoë', is_admin: true, email: 'zoe+tt@example.com', full_name: 'Zoë O\'Brien, Jr. 日本', groups: [], timestamp: Number(identity['x-auth-timestamp']) }),
      env,
      encoding: 'utf8'
    })
    t.equal(r.status, 0, r.stderr)
    t.same(JSON.parse(r.stdout), Object.fromEntries(Object.entries(identity).map(([k, v]) => [k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()), v])))
  })
}

const flaskPython = findPython('import flask')
if (requireTool(t, 'python3 with Flask', flaskPython, 'apt-get install python3-flask')) {
  t.test('a Flask upstream behind the gateway trusts exactly the signed identity', async (t) => {
    const child = spawn(flaskPython, [FLASK_DIR + 'demo_app.py', '--port', '0', '--secret-env', 'HEADER_SIGNING_SECRET', '--quiet'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { child.kill('SIGTERM') })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    const [line] = await Promise.race([
      once(child.stdout, 'data') as Promise<[Buffer]>,
      once(child, 'exit').then(() => { throw new Error(`demo_app exited: ${stderr}`) })
    ])
    const demo = /listening on (http:\/\/\S+)/.exec(line.toString())![1]!
    const gateway = await startGateway({ SKIP_AUTH_PATHS: '/public' }, { upstream: demo })
    t.teardown(gateway.close)
    const cookie = cookieHeader((await loginLocal(gateway.url, 'frank')).cookies)

    const whoami = await http(gateway.url + '/whoami', { headers: { cookie, 'x-user': 'admin', X_Admin: 'true' } })
    t.equal(whoami.status, 200)
    t.match(JSON.parse(whoami.body), { username: 'frank', is_admin: false })
    const anonymous = await http(gateway.url + '/public')
    t.same(JSON.parse(anonymous.body), { public: true, username: null }, 'skip-auth path: no identity')
    t.equal((await http(gateway.url + '/whoami')).status, 401, 'no session: refused by the gateway')
    const forged = await http(demo + '/whoami', { headers: { 'x-user': 'admin', 'x-admin': 'true', 'x-auth-timestamp': String(Math.floor(Date.now() / 1000)), 'x-auth-signature': 'v1=' + '0'.repeat(64) } })
    t.equal(forged.status, 401, 'forged headers sent straight to the app: refused by the verifier')
  })

  t.test('the Python test suite passes', async (t) => {
    // The Flask-Login recipe's tests need flask_login and flask_sqlalchemy (Debian: python3-flask-login,
    // python3-flask-sqlalchemy, installed by .ci/run); without them they skip and the rest still runs.
    const suitePython = findPython('import flask, flask_login, flask_sqlalchemy') ?? flaskPython
    if (suitePython === flaskPython && findPython('import flask_login, flask_sqlalchemy') === undefined) t.comment('flask_login or flask_sqlalchemy not installed: the Flask-Login recipe tests skip (apt-get install python3-flask-login python3-flask-sqlalchemy)')
    const r = spawnSync(suitePython, ['-m', 'unittest', 'discover', '-s', FLASK_DIR, '-t', FLASK_DIR], { env, encoding: 'utf8', timeout: 120_000 })
    t.equal(r.status, 0, r.stderr.split('\n').slice(-15).join('\n'))
    t.match(r.stderr, /\nOK/)
    if (process.env.CI !== undefined) t.notMatch(r.stderr, /skipped=/, 'in CI every Python test runs')
  })
}
