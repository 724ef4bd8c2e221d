// requestSite and gatewayOrigin: every combination of Sec-Fetch-Site, Origin and Referer, and the
// gateway's own origin from PUBLIC_URL or the request.
import t from 'tap'
import { gatewayOrigin, requestSite, type RequestSite, type SiteHeaders } from '../../src/auth/cross-site.js'

const OWN = 'https://tt.example.com'

const FETCH_SITE: Record<string, string | string[] | undefined> = {
  absent: undefined,
  'same-origin': 'same-origin',
  'same-site': 'same-site',
  'cross-site': 'cross-site',
  none: 'none',
  unknown: 'cross-origin',
  'upper-case': 'Same-Origin',
  empty: '',
  duplicated: 'same-origin, cross-site',
  'an array': ['same-origin', 'same-origin']
}
const ORIGIN: Record<string, string | undefined> = {
  absent: undefined,
  own: OWN,
  foreign: 'https://evil.example',
  null: 'null'
}
const REFERER: Record<string, string | undefined> = {
  absent: undefined,
  own: `${OWN}/projects/1?tab=time`,
  foreign: 'https://evil.example/page',
  garbage: 'not a url'
}

// Where Sec-Fetch-Site is absent or `none`, Origin and Referer decide. Rows: Origin; columns: Referer.
const S = 'same-origin'; const X = 'cross-site'; const U = 'unknown'
const WITHOUT_FETCH_SITE: Record<string, Record<string, RequestSite>> = {
  //         Referer:  absent  own    foreign garbage
  absent: { absent: U, own: U, foreign: X, garbage: X },
  own: { absent: S, own: S, foreign: S, garbage: S },
  foreign: { absent: X, own: X, foreign: X, garbage: X },
  null: { absent: U, own: U, foreign: X, garbage: X }
}
/** Sec-Fetch-Site, where the browser sent a value this code knows, decides alone. */
const FETCH_SITE_DECIDES: Record<string, RequestSite> = {
  'same-origin': S,
  'same-site': X, // a sibling subdomain is another site (see src/auth/cross-site.ts)
  'cross-site': X,
  unknown: X,
  'upper-case': X,
  empty: X,
  duplicated: X,
  'an array': X
}

t.test('every combination of Sec-Fetch-Site, Origin and Referer', async (t) => {
  let rows = 0
  for (const [fetchSiteName, fetchSite] of Object.entries(FETCH_SITE)) {
    for (const [originName, origin] of Object.entries(ORIGIN)) {
      for (const [refererName, referer] of Object.entries(REFERER)) {
        const headers: SiteHeaders = { 'sec-fetch-site': fetchSite, origin, referer }
        const expected = FETCH_SITE_DECIDES[fetchSiteName] ?? WITHOUT_FETCH_SITE[originName]![refererName]!
        t.equal(requestSite(headers, OWN), expected, `Sec-Fetch-Site ${fetchSiteName}, Origin ${originName}, Referer ${refererName}`)
        rows++
      }
    }
  }
  t.equal(rows, 10 * 4 * 4)
})

t.test('Origin: only the exact serialisation of the gateway origin is the gateway', async (t) => {
  const cases: Array<[string, string | string[], RequestSite]> = [
    ['exact', OWN, S],
    ['http instead of https', 'http://tt.example.com', X],
    ['another port', 'https://tt.example.com:8443', X],
    ['a sibling subdomain', 'https://other.example.com', X],
    ['the parent domain', 'https://example.com', X],
    ['a suffix lookalike', 'https://tt.example.com.evil.example', X],
    ['a trailing slash', OWN + '/', X],
    ['with a path', OWN + '/x', X],
    ['upper case (never sent by a browser)', 'HTTPS://TT.EXAMPLE.COM', X],
    ['two Origin headers joined', `${OWN}, ${OWN}`, X],
    ['an array', [OWN, OWN], X],
    ['empty', '', X]
  ]
  for (const [name, origin, expected] of cases) t.equal(requestSite({ origin }, OWN), expected, name)
})

t.test('Referer: only another origin tells; the path does not matter', async (t) => {
  const cases: Array<[string, string | string[], RequestSite]> = [
    ['own, root', OWN + '/', U],
    ['own, with query', OWN + '/a?b=c#d', U],
    ['own, with the default port spelled out', 'https://tt.example.com:443/', U],
    ['another port', 'https://tt.example.com:444/', X],
    ['http', 'http://tt.example.com/', X],
    ['a sibling subdomain', 'https://other.example.com/', X],
    ['about:blank', 'about:blank', X],
    ['a data: URL', 'data:text/html,x', X],
    ['relative', '/projects', X],
    ['empty', '', X],
    ['an array', [OWN + '/', OWN + '/'], X]
  ]
  for (const [name, referer, expected] of cases) t.equal(requestSite({ referer }, OWN), expected, name)
})

t.test('an unknown own origin matches no Origin or Referer; Sec-Fetch-Site still decides', async (t) => {
  t.equal(requestSite({ origin: OWN }, undefined), X)
  t.equal(requestSite({ referer: OWN + '/' }, undefined), X)
  t.equal(requestSite({ origin: 'null' }, undefined), U)
  t.equal(requestSite({}, undefined), U)
  t.equal(requestSite({ 'sec-fetch-site': 'same-origin', origin: 'https://elsewhere.example' }, undefined), S)
})

t.test('gatewayOrigin: PUBLIC_URL, else the request scheme and host', async (t) => {
  const cases: Array<[string, URL | undefined, string | undefined, string | undefined, string | undefined]> = [
    ['PUBLIC_URL wins', new URL('https://tt.example.com/base/'), 'http', '127.0.0.1:8080', OWN],
    ['PUBLIC_URL with a port', new URL('https://tt.example.com:8443'), 'http', 'x', 'https://tt.example.com:8443'],
    ['PUBLIC_URL with the default port', new URL('https://tt.example.com:443'), 'http', 'x', OWN],
    ['host and port', undefined, 'http', '127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['a name', undefined, 'https', 'tt.example.com', OWN],
    ['upper case', undefined, 'HTTPS', 'TT.Example.COM', OWN],
    ['default port dropped', undefined, 'http', 'localhost:80', 'http://localhost'],
    ['IPv6', undefined, 'http', '[::1]:8080', 'http://[::1]:8080'],
    ['trailing dot kept (a different origin to a browser)', undefined, 'https', 'tt.example.com.', 'https://tt.example.com.'],
    ['no host', undefined, 'http', undefined, undefined],
    ['empty host', undefined, 'http', '', undefined],
    ['userinfo', undefined, 'http', 'evil.example@tt.example.com', undefined],
    ['a path', undefined, 'http', 'tt.example.com/x', undefined],
    ['two hosts', undefined, 'http', 'a.example, b.example', undefined],
    ['a port out of the grammar', undefined, 'http', 'tt.example.com:123456', undefined],
    ['a port too large for a URL', undefined, 'http', 'tt.example.com:99999', undefined],
    ['another scheme', undefined, 'javascript', 'tt.example.com', undefined],
    ['no scheme', undefined, undefined, 'tt.example.com', undefined]
  ]
  for (const [name, publicUrl, protocol, host, expected] of cases) t.equal(gatewayOrigin(publicUrl, { protocol, host }), expected, name)
})
