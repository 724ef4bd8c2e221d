// The login page's SSO buttons (src/pages/login.ts): one per provider, in order, each a link that
// starts its provider's flow; a provider that cannot be reached says so next to its button, which
// stays a link (a click retries). The single provider's button is the one it always was.
import t from 'tap'
import { loginPage, MESSAGES, type LoginPageOptions, type SsoButton } from '../../src/pages/login.js'

const base: LoginPageOptions = { appName: 'Time Tracker', next: '/', csrfToken: 'csrf', showLocalForm: false, askPassword: false, sso: undefined }
const render = (sso: SsoButton[] | undefined, extra: Partial<LoginPageOptions> = {}): string => loginPage({ ...base, sso, ...extra })

interface Link { className: string, id: string, href: string, text: string, attributes: string, status: string | undefined }

/** The SSO links of a page, in document order: attributes unescaped as a browser reads them. */
function links (page: string): Link[] {
  const unescape = (s: string): string => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#96;/g, '`').replace(/&amp;/g, '&')
  return [...page.matchAll(/<a class="(button[^"]*)" id="(sso[^"]*)" href="([^"]*)"([^>]*)>([^<]*)<\/a>(<span class="sso-status" id="([^"]*)">([^<]*)<\/span>)?/g)].map((m) => ({
    className: m[1]!,
    id: m[2]!,
    href: unescape(m[3]!),
    attributes: m[4]!,
    text: unescape(m[5]!),
    status: m[6] !== undefined ? `${m[7]!}: ${m[8]!}` : undefined
  }))
}

const corp: SsoButton = { id: 'corp', text: 'Staff', unavailable: false }
const partner: SsoButton = { id: 'partner-org', text: 'Partners', unavailable: false }

t.test('several providers: a list of links in order, each naming its provider and keeping next', async (t) => {
  const page = render([corp, partner, { id: 'p3', text: 'Third', unavailable: false }], { next: '/reports?week=2&sort=a b' })
  const found = links(page)
  t.same(found.map((l) => l.id), ['sso-corp', 'sso-partner-org', 'sso-p3'], 'ids sso-<id>, in the given order')
  t.same(found.map((l) => l.text), ['Staff', 'Partners', 'Third'])
  for (const l of found) {
    const url = new URL(l.href, 'https://tt.example.com')
    t.equal(url.pathname, '/login/oidc', l.id)
    t.same([...url.searchParams.keys()], ['provider', 'next'], `${l.id}: provider, then next`)
    t.equal(url.searchParams.get('next'), '/reports?week=2&sort=a b', `${l.id}: next survives the round trip`)
  }
  t.same(found.map((l) => new URL(l.href, 'https://tt.example.com').searchParams.get('provider')), ['corp', 'partner-org', 'p3'])
  t.match(page, 'href="/login/oidc?provider=corp&amp;next=%2Freports%3Fweek%3D2%26sort%3Da%20b"', 'next percent-encoded, & escaped in the attribute')
  t.match(page, /<ul class="sso-buttons"><li><a [^>]*id="sso-corp"[^>]*>Staff<\/a><\/li><li><a [^>]*id="sso-partner-org"/, 'one list item each')
  t.notMatch(page, /data-unavailable|sso-status/, 'all reachable: no status')
  t.notMatch(page, /id="sso"/, 'no unnamed button')
})

t.test('one provider: one button in a paragraph; unnamed for the single provider, named with OIDC_PROVIDERS', async (t) => {
  const single = render([{ id: undefined, text: 'Sign in with SSO', unavailable: false }], { next: '/a?b=c' })
  t.same(links(single).map((l) => [l.id, l.href, l.text]), [['sso', '/login/oidc?next=%2Fa%3Fb%3Dc', 'Sign in with SSO']], 'as before OIDC_PROVIDERS: no provider in the link')
  t.match(single, /<p><a class="button" id="sso" href="\/login\/oidc\?next=%2Fa%3Fb%3Dc">Sign in with SSO<\/a><\/p>/)
  t.notMatch(single, 'sso-buttons')
  const named = render([corp])
  t.same(links(named).map((l) => [l.id, l.href]), [['sso-corp', '/login/oidc?provider=corp&next=%2F']])
  t.match(named, /<p><a [^>]*id="sso-corp"/)
  t.notMatch(named, 'sso-buttons')
})

t.test('a provider that cannot be reached: its button says so, and stays a link', async (t) => {
  const page = render([corp, { ...partner, unavailable: true }])
  const [first, second] = links(page)
  t.equal(first!.status, undefined, 'the reachable one has no status')
  t.notMatch(first!.attributes, /data-unavailable|aria-describedby/)
  t.match(second!.attributes, / aria-describedby="sso-partner-org-status"/, 'the status is the link\'s description')
  t.match(second!.attributes, / data-unavailable/)
  t.equal(second!.status, `sso-partner-org-status: ${MESSAGES.buttonUnavailable}`)
  t.equal(MESSAGES.buttonUnavailable, 'Cannot be reached right now; try again in a moment.')
  t.equal(second!.href, '/login/oidc?provider=partner-org&next=%2F', 'still a link: a click retries discovery')
  t.equal(page.match(/class="sso-status"/g)?.length, 1, 'one status only')
  const both = links(render([{ ...corp, unavailable: true }, { ...partner, unavailable: true }]))
  t.same(both.map((l) => l.status?.split(':')[0]), ['sso-corp-status', 'sso-partner-org-status'], 'each status its own id')
})

t.test('button texts are escaped', async (t) => {
  const page = render([{ id: 'corp', text: '<img src=x onerror=alert(1)> "Staff" & \'co\'', unavailable: false }, partner])
  t.notMatch(page, '<img src=x', 'no markup from the text')
  t.match(page, '&lt;img src=x onerror=alert(1)&gt; &quot;Staff&quot; &amp; &#39;co&#39;</a>')
  t.equal(links(page)[0]!.text, '<img src=x onerror=alert(1)> "Staff" & \'co\'', 'shown as written')
})

t.test('with the local form: the buttons, the "or" divider, then the form', async (t) => {
  const page = render([corp, partner], { showLocalForm: true })
  const order = ['id="sso-corp"', 'id="sso-partner-org"', 'class="divider"', '<form method="post" action="/login"'].map((s) => page.indexOf(s))
  t.ok(order.every((i) => i >= 0), `all there: ${order.join(', ')}`)
  t.same([...order].sort((a, b) => a - b), order, 'in that order')
  t.same(links(page).map((l) => l.className), ['button secondary', 'button secondary'], 'secondary buttons above the form')
  t.same(links(render([corp, partner])).map((l) => l.className), ['button', 'button'], 'primary without it')
  t.notMatch(render([corp, partner]), 'class="divider"', 'no divider without the form')
  t.notMatch(render([], { showLocalForm: true }), 'class="divider"', 'no divider without buttons')
  t.notMatch(render(undefined, { showLocalForm: true }), /id="sso/, 'no SSO: no button')
})
