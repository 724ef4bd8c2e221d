// mayLogOutAtOnce: every method, site and CSRF-token combination of a /logout request.
import t from 'tap'
import { mayLogOutAtOnce } from '../../src/auth/logout-gate.js'
import type { RequestSite } from '../../src/auth/cross-site.js'

// [method, site, valid csrf_token, signs out at once]
const TABLE: Array<[string, RequestSite, boolean, boolean]> = [
  // A GET (and HEAD, which Fastify answers with the GET route) signs out unless it may come from another site.
  ['GET', 'same-origin', false, true],
  ['GET', 'unknown', false, true],
  ['GET', 'cross-site', false, false],
  ['GET', 'cross-site', true, false],
  ['HEAD', 'same-origin', false, true],
  ['HEAD', 'unknown', false, true],
  ['HEAD', 'cross-site', false, false],
  // A POST needs proof: its own origin, or the token from the confirmation page.
  ['POST', 'same-origin', false, true],
  ['POST', 'same-origin', true, true],
  ['POST', 'unknown', false, false],
  ['POST', 'unknown', true, true],
  ['POST', 'cross-site', false, false],
  ['POST', 'cross-site', true, false], // a CSRF cookie planted by a sibling subdomain, with its own token
  // Any other method is held to the POST rule.
  ['PUT', 'unknown', false, false],
  ['DELETE', 'cross-site', true, false]
]

for (const [method, site, tokenValid, expected] of TABLE) {
  t.equal(mayLogOutAtOnce(method, site, tokenValid), expected, `${method}, ${site}, ${tokenValid ? 'valid token' : 'no valid token'}`)
}
