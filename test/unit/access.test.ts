import t from 'tap'
import { isBrowserNavigation, isSkipAuthPath, loginLocation, normalizeRequestTarget, splitTarget } from '../../src/proxy/access.js'

t.test('request targets are normalised once, as servers read them', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['/a/b?x=1', '/a/b?x=1'],
    ['/static/../admin', '/admin'],
    ['/static/%2e%2e/admin', '/admin'],
    ['/static/.%2E/admin', '/admin'],
    ['/static\\..\\admin', '/admin'],
    ['/./x/./y', '/x/y'],
    ['//evil.com/x', '//evil.com/x'],
    ['/a/..', '/'],
    ['http://evil.com/x', undefined],
    ['*', undefined],
    ['', undefined]
  ]
  for (const [raw, expected] of cases) {
    const target = normalizeRequestTarget(raw)
    t.equal(target === undefined ? undefined : target.path + target.search, expected, raw)
  }
})

t.test('skip-auth prefixes match the normalised path only', async (t) => {
  const prefixes = ['/static/', '/api/v1/', '/healthz']
  const path = (raw: string): string => normalizeRequestTarget(raw)!.path
  t.ok(isSkipAuthPath(path('/static/app.css'), prefixes))
  t.ok(isSkipAuthPath(path('/api/v1/projects?x=/admin'), prefixes))
  t.ok(isSkipAuthPath(path('/healthz'), prefixes))
  t.ok(isSkipAuthPath(path('/healthz/db'), prefixes))
  t.notOk(isSkipAuthPath(path('/healthzz'), prefixes), 'a prefix without / matches whole segments')
  t.notOk(isSkipAuthPath(path('/static/../admin'), prefixes), 'dot segments resolved before matching')
  t.notOk(isSkipAuthPath(path('/static/%2e%2e/admin'), prefixes))
  t.notOk(isSkipAuthPath(path('/static/..%2fadmin'), prefixes), 'encoded slash never skips auth')
  t.notOk(isSkipAuthPath(path('/static/%252e%252e/admin'), prefixes), 'double encoding never skips auth')
  t.notOk(isSkipAuthPath(path('/static/..;/admin'), prefixes), 'dot segment with a path parameter (Tomcat reads it as ..)')
  t.notOk(isSkipAuthPath(path('/static/.;x/../..;y/admin'), prefixes), 'also with parameter values')
  t.notOk(isSkipAuthPath(path('/healthz/..;/admin'), prefixes))
  t.notOk(isSkipAuthPath(path('/static/..%3b/admin'), prefixes), 'encoded semicolon never skips auth')
  t.ok(isSkipAuthPath(path('/static/app.js;v=2'), prefixes), 'other path parameters are fine')
  t.ok(isSkipAuthPath(path('/static/x..;y/app.js'), prefixes), 'dots inside a name are fine')
  t.notOk(isSkipAuthPath(path('/static'), prefixes), '/static/ does not cover /static')
  t.notOk(isSkipAuthPath(path('/STATIC/x'), prefixes), 'case-sensitive')
  t.notOk(isSkipAuthPath(path('/admin?/static/'), prefixes), 'query is not the path')
  t.notOk(isSkipAuthPath(path('/admin'), []), 'no prefixes')
})

t.test('browser navigations', async (t) => {
  t.ok(isBrowserNavigation('GET', 'text/html,application/xhtml+xml,*/*;q=0.8'))
  t.ok(isBrowserNavigation('HEAD', 'text/html'))
  t.notOk(isBrowserNavigation('POST', 'text/html'))
  t.notOk(isBrowserNavigation('GET', 'application/json'))
  t.notOk(isBrowserNavigation('GET', undefined))
  t.equal(loginLocation({ path: '/a b/c', search: '?x=1&y=2' }), '/login?next=%2Fa%20b%2Fc%3Fx%3D1%26y%3D2')
})

t.test('a normalised URL splits into what normalisation produced', async (t) => {
  for (const raw of ['/a/b?x=1&y=/z', '/a', '/?', '/static/../admin?q']) {
    const target = normalizeRequestTarget(raw)!
    t.same(splitTarget(target.path + target.search), target, raw)
  }
})
