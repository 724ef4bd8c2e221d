// Every answer from the IdP is read through boundedFetch: at most MAX_RESPONSE_BYTES of it, whatever
// its Content-Length says (or does not say), counted after decompression.
import t from 'tap'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { boundedFetch, IdpResponseTooLargeError, MAX_RESPONSE_BYTES } from '../../src/auth/oidc/client.js'

const routes: Record<string, (res: ServerResponse) => void> = {
  // chunked: several writes and no Content-Length
  '/chunked-at-limit': (res) => { for (let i = 0; i < 16; i++) res.write('x'.repeat(MAX_RESPONSE_BYTES / 16)); res.end() },
  '/chunked-one-over': (res) => { for (let i = 0; i < 16; i++) res.write('x'.repeat(MAX_RESPONSE_BYTES / 16)); res.end('x') },
  '/declared-too-large': (res) => { res.setHeader('content-length', String(2 * MAX_RESPONSE_BYTES)); res.write('x'); setTimeout(() => res.destroy(), 200) },
  '/gzip-bomb': (res) => {
    const body = gzipSync(Buffer.alloc(16 * MAX_RESPONSE_BYTES, 'x'))
    res.setHeader('content-encoding', 'gzip')
    res.setHeader('content-length', String(body.length))
    res.end(body)
  },
  '/json': (res) => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}') },
  '/no-content': (res) => { res.statusCode = 204; res.end() }
}
const server = createServer((req, res) => { (routes[req.url ?? ''] ?? ((r) => { r.statusCode = 404; r.end() }))(res) })
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => { server.closeAllConnections(); server.close() })
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const get = async (path: string): Promise<Response> => await boundedFetch(base + path, { method: 'GET', headers: {}, body: undefined, redirect: 'manual' })

t.test('an answer of exactly the limit, chunked, is read whole', async (t) => {
  const response = await get('/chunked-at-limit')
  t.equal((await response.arrayBuffer()).byteLength, MAX_RESPONSE_BYTES)
})

t.test('one byte more, chunked: refused', async (t) => {
  await t.rejects(get('/chunked-one-over'), IdpResponseTooLargeError)
})

t.test('a Content-Length over the limit: refused before reading', async (t) => {
  await t.rejects(get('/declared-too-large'), { name: 'IdpResponseTooLargeError', message: /declares 2097152 bytes/ })
})

t.test('a small compressed answer that inflates past the limit: refused', async (t) => {
  await t.rejects(get('/gzip-bomb'), IdpResponseTooLargeError)
})

t.test('ordinary answers keep status, headers and body', async (t) => {
  const json = await get('/json')
  t.equal(json.status, 200)
  t.equal(json.headers.get('content-type'), 'application/json')
  t.same(await json.json(), { ok: true })
  const empty = await get('/no-content')
  t.equal(empty.status, 204)
})
