import t from 'tap'
import { upstreamWebSocketHeaders } from '../../src/proxy/forwarding.js'

const ctx = { identity: { 'x-user': 'alice', 'x-auth-signature': 'v1=sig' }, forwardedFor: ['10.0.0.1'], proto: 'https', host: 'tt.example.com' }

t.test('the upstream handshake gets identity and forwarding headers, never the client\'s handshake', async (t) => {
  const out = upstreamWebSocketHeaders({
    host: 'tt.example.com',
    connection: 'Upgrade, X-Drop',
    upgrade: 'websocket',
    'x-drop': 'listed in Connection',
    'sec-websocket-key': 'client-key',
    'sec-websocket-version': '13',
    'sec-websocket-extensions': 'permessage-deflate',
    'sec-websocket-protocol': 'chat',
    'content-length': '5',
    origin: 'https://tt.example.com',
    'user-agent': 'test',
    cookie: 'authgate=s; app=1',
    'x-user': 'mallory',
    X_Auth_Signature: 'forged',
    'x-forwarded-for': '6.6.6.6'
  }, ctx)
  t.same(out, {
    origin: 'https://tt.example.com',
    'user-agent': 'test',
    cookie: 'app=1',
    'x-forwarded-for': '10.0.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'tt.example.com',
    'x-user': 'alice',
    'x-auth-signature': 'v1=sig'
  })
})

t.test('skip-auth upgrades carry no identity', async (t) => {
  const out = upstreamWebSocketHeaders({ 'x-user': 'mallory', cookie: '__Host-authgate=s' }, { ...ctx, identity: undefined })
  t.notOk('x-user' in out)
  t.notOk('cookie' in out)
})
