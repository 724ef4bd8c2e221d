// What the gateway logs per request: one access line at info, nothing from @fastify/reply-from at
// info (its two lines are the gateway's own at debug); and the terminal format of those records.
import t from 'tap'
import { startGateway } from '../support/gateway.js'
import { startUpstream } from '../support/upstream.js'
import { logCapture } from '../support/log-capture.js'
import { cookieHeader, http, loginLocal } from '../support/http.js'
import { formatLine } from '../../src/log-format.js'

t.test('one access line per proxied request at info, nothing from reply-from', async (t) => {
  const upstream = await startUpstream()
  const log = logCapture('debug')
  const gw = await startGateway({ SKIP_AUTH_PATHS: '/public/' }, { upstream: upstream.url, logger: log.logger })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const { cookies } = await loginLocal(gw.url, 'alice')
  const before = log.lines().length
  t.equal((await http(`${gw.url}/app/page?token=s3cret`, { headers: { cookie: cookieHeader(cookies) } })).status, 200)
  t.equal((await http(`${gw.url}/public/logo.png`)).status, 200)
  const lines = log.lines().slice(before)
  const info = lines.filter((l) => (l.level as number) >= 30)
  t.same(info.map((l) => [l.msg, l.method, l.path, l.status]), [['request', 'GET', '/app/page', 200], ['request', 'GET', '/public/logo.png', 200]],
    'exactly the access lines, in order')
  t.notMatch(JSON.stringify(lines), /s3cret/, 'no query string anywhere')
  t.notOk(lines.some((l) => /fetching from remote server|response received/.test(String(l.msg))), 'reply-from\'s own lines are off')
  t.equal(lines.filter((l) => l.msg === 'forwarding to the upstream' && l.level === 20).length, 2, 'the same facts at debug')
  t.equal(lines.filter((l) => l.msg === 'upstream answered' && l.level === 20).length, 2)
  // Each request's lines share its id, so a debug session can follow one request.
  const ids = new Set(lines.filter((l) => l.msg === 'request').map((l) => l.reqId))
  t.equal(ids.size, 2)
})

t.test('the terminal format', async (t) => {
  const time = new Date(2026, 0, 2, 3, 4, 5, 6).getTime()
  t.equal(formatLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', reqId: 'req-1', msg: 'request', method: 'GET', path: '/x', status: 200, ms: 12 }), false),
    '03:04:05.006 INFO  GET /x 200 12ms\n', 'the access line reads like one')
  t.equal(formatLine(JSON.stringify({ level: 40, time, msg: 'unknown variables', variables: ['A_B'], dir: '/tmp/my dir' }), false),
    '03:04:05.006 WARN  unknown variables  variables=["A_B"] dir="/tmp/my dir"\n', 'fields after the message, quoted when they have spaces')
  const err = new Error('boom')
  const withStack = formatLine(JSON.stringify({ level: 50, time, msg: 'request failed', err: { type: 'Error', message: err.message, stack: err.stack } }), false)
  t.match(withStack, /^03:04:05\.006 ERROR request failed {2}error=boom\n {4}at /, 'the stack below, indented')
  t.equal(formatLine('not json', false), 'not json', 'anything else passes through')
  t.match(formatLine(JSON.stringify({ level: 50, time, msg: 'x' }), true), '\u001b[31mERROR\u001b[0m', 'colours on a terminal')
})
