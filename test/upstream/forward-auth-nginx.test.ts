// Forward-auth through a real nginx (auth_request), configured from the repository's own
// config/nginx-auth-request.test.conf.template: what operators copy is what is tested. With
// ACCESS_RULES, nginx passes the gateway's 403 on, and sets the URI header itself (a client's is overwritten).
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startGateway, HEADER_SIGNING_SECRET } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { findNginx, requireTool } from '../support/tools.js'
import { verifyIdentityHeaders } from '@authgate/verify'

const TEMPLATE = fileURLToPath(new URL('../../config/nginx-auth-request.test.conf.template', import.meta.url))

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

const nginx = findNginx()
if (requireTool(t, 'nginx', nginx, 'apt-get install nginx-light')) {
  const app = await startUpstream()
  const gateway = await startGateway({ TRUST_PROXY: '127.0.0.1', ACCESS_RULES: '/admin=admin', ADMIN_USERNAMES: 'admin' }, { upstream: app.url })
  const prefix = mkdtempSync(join(tmpdir(), 'authgate-nginx-'))
  const port = await freePort()
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, readFileSync(TEMPLATE, 'utf8')
    .replaceAll('__NGINX_PORT__', String(port))
    .replaceAll('__AUTHGATE__', new URL(gateway.url).host)
    .replaceAll('__UPSTREAM__', new URL(app.url).host)
    .replaceAll('__PREFIX__', prefix))
  const args = ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')]
  const check = spawnSync(nginx, ['-t', ...args], { encoding: 'utf8' })
  t.equal(check.status, 0, `nginx -t accepts the template: ${check.stderr}`)
  const child = spawn(nginx, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  t.teardown(async () => {
    child.kill('SIGTERM')
    await gateway.close()
    await app.close()
    rmSync(prefix, { recursive: true, force: true })
  })
  const front = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    try {
      await http(front + '/_authgate/healthz')
      break
    } catch {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  t.test('before login: browsers are redirected, other clients get 401, the app sees nothing', async (t) => {
    const before = app.received.length
    const page = await http(front + '/projects/4?tab=time', { headers: { accept: 'text/html' } })
    t.equal(page.status, 302)
    // nginx makes the Location absolute (absolute_redirect); the path is what the config wrote.
    const location = new URL(page.headers.location as string, front)
    t.equal(location.origin + location.pathname + location.search, front + '/login?next=/projects/4?tab=time')
    const api = await http(front + '/api/timer', { headers: { accept: 'application/json', 'x-user': 'admin', 'x-auth-signature': 'v1=' + '0'.repeat(64) } })
    t.equal(api.status, 401)
    t.same(JSON.parse(api.body), { error: 'unauthenticated' })
    const post = await http(front + '/timer/start', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    t.equal(post.status, 401)
    t.equal(app.received.length, before, 'no request reached the application')
  })

  t.test('after login through nginx: the protected location is reachable with verified identity', async (t) => {
    const { cookies, response } = await loginLocal(front, 'nina', { next: '/projects' })
    t.equal(response.status, 303)
    const cookie = cookieHeader(cookies)
    const res = await http(front + '/projects?x=1', { headers: { cookie, accept: 'text/html', 'x-user': 'admin', 'X-Admin': 'true', X_User: 'admin' } })
    t.equal(res.status, 200)
    const got = app.received.at(-1)!
    t.equal(got.url, '/projects?x=1')
    const verified = verifyIdentityHeaders(got.headers, HEADER_SIGNING_SECRET)
    t.ok(verified.ok, 'the app verifies what nginx copied from the auth answer')
    t.equal(verified.ok && verified.identity.username, 'nina')
    t.equal(got.headers['x-admin'], 'false', 'client-sent X-Admin replaced')
    t.notOk(Object.keys(got.headers).some((h) => h.includes('_')), 'underscore variants dropped')

    const body = JSON.stringify({ project: 4, note: 'x'.repeat(10_000) })
    const post = await http(front + '/timer/start', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body })
    t.equal(post.status, 200, 'a POST passes the check (the subrequest keeps method and type, no body)')
    t.equal(app.received.at(-1)!.body, body, 'and its body reaches the app intact')
  })

  t.test('ACCESS_RULES: nginx passes the gateway\'s 403 on, and reports the URI itself', async (t) => {
    const nina = cookieHeader((await loginLocal(front, 'nina')).cookies)
    const before = app.received.length
    for (const path of ['/admin', '/admin/users?page=2', '/ADMIN', '/%61dmin', '//admin', '/x/..%2Fadmin']) {
      const res = await http(front + path, { headers: { cookie: nina, accept: 'application/json' } })
      t.equal(res.status, 403, `nina: ${path}`)
    }
    // nginx's proxy_set_header replaces the client's X-Original-URI and X-Forwarded-Uri: no forged "/ok" reaches the check.
    const forged = await http(front + '/admin', { headers: { cookie: nina, 'x-original-uri': '/projects', 'x-forwarded-uri': '/projects', 'x-original-url': 'http://127.0.0.1/projects' } })
    t.equal(forged.status, 403, 'forged URI headers do not open /admin')
    t.equal(app.received.length, before, 'nothing refused reached the application')
    const overwritten = await http(front + '/projects', { headers: { cookie: nina, 'x-original-uri': '/admin', 'x-forwarded-uri': '/admin' } })
    t.equal(overwritten.status, 200, 'and the client\'s copies are not passed beside nginx\'s (a repeated header would be a 403)')
    t.equal(app.received.at(-1)!.url, '/projects')
    t.equal((await http(front + '/administrator', { headers: { cookie: nina } })).status, 200, 'another segment is not /admin')

    const admin = cookieHeader((await loginLocal(front, 'admin')).cookies)
    const res = await http(front + '/admin/users', { headers: { cookie: admin } })
    t.equal(res.status, 200, 'an admin passes')
    const got = app.received.at(-1)!
    t.equal(got.url, '/admin/users')
    const verified = verifyIdentityHeaders(got.headers, HEADER_SIGNING_SECRET)
    t.same(verified.ok && [verified.identity.username, verified.identity.isAdmin], ['admin', true])
    t.equal((await http(front + '/admin', { headers: { accept: 'application/json' } })).status, 401, 'no session: still 401')
  })

  t.test('the gateway\'s own routes pass through nginx unchecked', async (t) => {
    t.equal((await http(front + '/_authgate/healthz')).status, 200)
    t.equal((await http(front + '/login')).status, 200)
  })
}
