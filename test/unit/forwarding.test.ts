import t from 'tap'
import { clientResponseHeaders, removeGatewayCookies, upstreamRequestHeaders } from '../../src/proxy/forwarding.js'

t.test('gateway cookies never reach the upstream', async (t) => {
  t.equal(removeGatewayCookies('authgate=abc; app=1; __Host-authgate=x; authgate_csrf=y; authgate_oidc_1=z; theme=dark'), 'app=1; theme=dark')
  t.equal(removeGatewayCookies('authgate=abc'), undefined)
  t.equal(removeGatewayCookies(undefined), undefined)
  t.equal(removeGatewayCookies('authgatex=1; notauthgate=2'), 'authgatex=1; notauthgate=2', 'only our names')
})

t.test('request headers for the upstream', async (t) => {
  const identity = { 'x-user': 'alice', 'x-admin': 'false' }
  const out = upstreamRequestHeaders({
    host: 'gw', accept: '*/*', 'x-user': 'mallory', X_User: 'm', 'x.admin': 'true', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1',
    'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', te: 'trailers', upgrade: 'websocket', 'proxy-authorization': 'Basic x',
    'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-real-ip': '6.6.6.6', cookie: 'authgate=s; app=1'
  }, { identity, forwardedFor: ['10.0.0.1', '127.0.0.1'], proto: 'https', host: 'tt.example.com' })
  t.same(out, {
    host: 'gw',
    accept: '*/*',
    cookie: 'app=1',
    'x-forwarded-for': '10.0.0.1, 127.0.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'tt.example.com',
    'x-user': 'alice',
    'x-admin': 'false'
  })
})

t.test('the upstream cannot set the gateway cookies', async (t) => {
  const out = clientResponseHeaders({ 'set-cookie': ['app=1; Path=/', 'authgate=forged', '__Host-authgate=x; Secure', 'authgate_csrf=1'], 'content-type': 'text/plain' })
  t.same(out['set-cookie'], ['app=1; Path=/'])
  t.equal(clientResponseHeaders({ 'set-cookie': 'authgate=x' })['set-cookie'], undefined)
  t.same(clientResponseHeaders({ 'content-type': 'a', connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=5', 'x-hop': '1', 'proxy-authenticate': 'Basic', upgrade: 'h2c' }), { 'content-type': 'a' }, 'hop-by-hop response headers dropped')
})
