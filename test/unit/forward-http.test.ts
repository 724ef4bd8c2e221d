// The upstream path of a proxied request: @fastify/http-proxy's destination and the query as it came.
import t from 'tap'
import { upstreamPath } from '../../src/proxy/forward-http.js'

t.test('the destination, with the request\'s query string untouched', async (t) => {
  t.equal(upstreamPath('/app/reports', '/reports?week=2&x=%20'), '/app/reports?week=2&x=%20')
  t.equal(upstreamPath('/reports', '/reports'), '/reports')
  t.equal(upstreamPath('/a%20b', '/a%20b?'), '/a%20b?', 'an empty query stays')
})

t.test('a destination that decodes to a parent segment is refused with 400', async (t) => {
  for (const dest of ['/..x', '/a../b', '/a/%2e%2e/b', '/%2e%2e']) {
    t.throws(() => upstreamPath(dest, dest), { message: 'source/request contain invalid characters', statusCode: 400 } as unknown as Error, dest)
  }
  t.throws(() => upstreamPath('/%zz', '/%zz'), { statusCode: 400 } as unknown as Error, 'undecodable')
  t.equal(upstreamPath('/a...b/[...slug]', '/a...b/[...slug]'), '/a...b/[...slug]', 'dots inside a segment are fine')
})
