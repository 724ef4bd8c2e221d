import t from 'tap'
import { originalRequest, reportedPaths, unauthenticatedAnswer } from '../../src/proxy/forward-auth.js'

t.test('originalRequest reads every front proxy\'s naming', async (t) => {
  t.same(originalRequest({ 'x-forwarded-method': 'post', 'x-forwarded-uri': '/a?b' }, 'GET'), { method: 'POST', uri: '/a?b' }, 'Traefik, Caddy')
  t.same(originalRequest({ 'x-original-method': 'PUT', 'x-original-uri': '/n' }, 'GET'), { method: 'PUT', uri: '/n' }, 'nginx')
  t.same(originalRequest({ 'x-original-url': 'https://h/p?q=1' }, 'HEAD'), { method: 'HEAD', uri: '/p?q=1' }, 'ingress-nginx')
  t.same(originalRequest({ 'x-original-url': '::' }, 'GET'), { method: 'GET', uri: undefined }, 'unparseable URL')
  t.same(originalRequest({ 'x-forwarded-uri': ['/a', '/b'] }, 'GET'), { method: 'GET', uri: undefined }, 'repeated header ignored')
  t.same(originalRequest({}, 'GET'), { method: 'GET', uri: undefined })
})

t.test('unauthenticatedAnswer: 401 unless asked to redirect a browser navigation', async (t) => {
  const nav = { accept: 'text/html', 'x-forwarded-uri': '/x' }
  t.same(unauthenticatedAnswer(nav, 'GET', false), { status: 401 })
  t.same(unauthenticatedAnswer(nav, 'GET', true), { status: 302, location: '/login?next=%2Fx' })
  t.same(unauthenticatedAnswer({ ...nav, 'x-forwarded-method': 'DELETE' }, 'GET', true), { status: 401 })
  t.same(unauthenticatedAnswer({ 'x-forwarded-uri': '/x' }, 'GET', true), { status: 401 })
  t.same(unauthenticatedAnswer({ ...nav, 'x-forwarded-uri': 'https://evil.example/' }, 'GET', true), { status: 302, location: '/login?next=%2F' })
})

t.test('reportedPaths: every URI reported, normalised like a proxied request\'s', async (t) => {
  /** The raw header lines for `headers`, each sent once (what Node's request.rawHeaders holds). */
  const once = (headers: Record<string, string>): string[] => Object.entries(headers).flat()
  const paths = (headers: Record<string, string>, raw = once(headers)): string[] | undefined => reportedPaths(headers, raw)
  t.same(paths({}), [], 'none reported')
  t.same(paths({ 'x-forwarded-uri': '' }), [], 'an empty header reports nothing')
  t.same(paths({ 'x-forwarded-uri': '/a?b=1' }), ['/a'], 'Traefik, Caddy: the path, without the query')
  t.same(paths({ 'x-original-uri': '/x/../admin' }), ['/admin'], 'nginx: dot segments resolved')
  t.same(paths({ 'x-original-url': 'https://tt.example.com/p/q?r' }), ['/p/q'], 'ingress-nginx: absolute URL')
  t.same(paths({ 'x-original-uri': '/%61dmin/%2e/x\\y' }), ['/%61dmin/x/y'], 'encoded letters kept (the rules read them), %2e resolved, \\ as /')
  t.same(paths({ 'x-forwarded-uri': '/ok', 'x-original-uri': '/admin', 'x-original-url': 'http://h/b' }), ['/ok', '/admin', '/b'], 'all of them, not the first')
  t.same(paths({ 'x-forwarded-uri': '//admin' }), ['//admin'], 'a double slash stays a path, not a host')

  t.equal(paths({ 'x-forwarded-uri': 'https://evil.example/ok' }), undefined, 'an absolute URI where a path belongs')
  t.equal(paths({ 'x-original-uri': 'admin' }), undefined, 'not starting with /')
  t.equal(paths({ 'x-original-url': 'not a url' }), undefined, 'an X-Original-URL that does not parse')
  t.equal(reportedPaths({ 'x-original-uri': ['/ok', '/admin'] }, []), undefined, 'a header given twice (as an array)')
  // What Node does with a repeated header: one value joined with ", ", and two raw lines.
  t.equal(paths({ 'x-original-uri': '/ok, /admin' }, ['X-Original-URI', '/ok', 'x-original-uri', '/admin']), undefined, 'a header sent twice, joined by Node')
  t.equal(paths({ 'x-original-url': 'http://h/ok, http://h/admin' }, ['X-Original-URL', 'http://h/ok', 'X-ORIGINAL-URL', 'http://h/admin']), undefined)
  t.same(paths({ 'x-original-uri': '/a,b' }, ['X-Original-URI', '/a,b', 'X-Forwarded-For', '1.2.3.4', 'X-Forwarded-For', '5.6.7.8']), ['/a,b'], 'a comma in one header, other headers repeated: fine')
})
