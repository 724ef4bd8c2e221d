// The demo's OpenID Provider: node-oidc-provider (a devDependency, so this lives outside src/ and
// never ships) with a plain sign-in form and a few demo accounts. For people trying authgate out,
// not for tests (test/support/oidc-provider.ts is that) and never for production: accounts,
// passwords and keys are fixed or in memory and printed on the screen. It issues refresh tokens, and
// its /accounts page changes an account's groups, to watch a re-validated session follow the change.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { exportJWK, generateKeyPair } from 'jose'
import { html, SafeHtml } from '../../src/pages/html.js'

export interface DemoAccount {
  username: string
  password: string
  name: string
  email: string
  groups: string[]
}

/** The group that makes an account an authgate administrator (OIDC_ADMIN_GROUP). */
export const ADMIN_GROUP = 'admins'

export const DEMO_ACCOUNTS: DemoAccount[] = [
  { username: 'alice', password: 'alice-demo', name: 'Alice Anderson', email: 'alice@example.test', groups: ['staff', ADMIN_GROUP] },
  { username: 'bob', password: 'bob-demo', name: 'Bob Brown', email: 'bob@example.test', groups: ['staff'] },
  { username: 'carol', password: 'carol-demo', name: 'Carol Chen', email: 'carol@example.test', groups: ['contractors'] }
]

/**
 * A second organisation's accounts, for `npm run demo`'s second provider. Usernames of their own: one
 * username belongs to one identity (a second provider cannot sign in as the first one's alice).
 */
export const PARTNER_ACCOUNTS: DemoAccount[] = [
  { username: 'pat', password: 'pat-demo', name: 'Pat Parker', email: 'pat@partner.example.test', groups: ['partners'] },
  { username: 'quinn', password: 'quinn-demo', name: 'Quinn Quade', email: 'quinn@partner.example.test', groups: ['partners', 'reviewers'] }
]

export interface DemoIdpClient {
  clientId: string
  clientSecret: string
  redirectUri: string
  postLogoutRedirectUri: string
  /**
   * The gateway's back-channel logout URI: when set, signing out at the provider posts a logout
   * token there (OpenID Connect Back-Channel Logout) and ID tokens carry `sid`.
   */
  backchannelLogoutUri?: string
}

export interface DemoIdpOptions {
  /** Where it listens (default 127.0.0.1) and on which port (default: any free one). */
  host?: string
  port?: number
  /**
   * The URL browsers and the gateway reach it at, when that is not where it listens (in a container
   * it listens on every interface; see scripts/demo/idp-server.ts). Default: http://host:port.
   */
  issuer?: string
  /** Shown on its pages (default "Demo Identity Provider"): with two providers, which one this is. */
  name?: string
  /** Its accounts (default DEMO_ACCOUNTS); each provider works on its own copy. */
  accounts?: DemoAccount[]
  /** Its pages' accent colour in the light and dark schemes, so two providers do not look alike. */
  accent?: { light: string, dark: string }
}

export interface DemoIdp {
  issuer: string
  name: string
  /** This provider's accounts, live: a change (say, to `groups`, also at /accounts) applies from the next sign-in or refresh. */
  accounts: DemoAccount[]
  close: () => Promise<void>
}

/** The parts of oidc-provider's (untyped) API used here. */
interface Provider {
  callback: () => (req: IncomingMessage, res: ServerResponse) => void
  interactionDetails: (req: IncomingMessage, res: ServerResponse) => Promise<{ uid: string, prompt: { name: string }, params: Record<string, unknown>, session?: { accountId?: string }, grantId?: string }>
  interactionFinished: (req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }) => Promise<void>
  Grant: { new (init: { accountId: string, clientId: string }): Grant, find: (id: string) => Promise<Grant | undefined> }
  on: (event: string, listener: (...args: unknown[]) => void) => unknown
}
interface Grant { addOIDCScope: (scope: string) => void, save: () => Promise<string> }

/** Load oidc-provider, without its warning that Node 20 is not an LTS it tests on (it works there). */
async function loadProvider (): Promise<new (issuer: string, configuration: Record<string, unknown>) => Provider> {
  const warn = console.warn
  console.warn = (...args: unknown[]) => { if (!String(args[0]).includes('Unsupported runtime')) warn(...args) }
  try {
    // @ts-ignore -- oidc-provider ships no type declarations; `Provider` above types what is used.
    const module = await import('oidc-provider') as { default: unknown }
    return module.default as new (issuer: string, configuration: Record<string, unknown>) => Provider
  } catch (err) {
    throw new Error(`the demo needs the devDependency oidc-provider; run npm install first (${(err as Error).message})`)
  } finally {
    console.warn = warn
  }
}

export async function startDemoIdp (client: DemoIdpClient, options: DemoIdpOptions = {}): Promise<DemoIdp> {
  const Provider = await loadProvider()
  const host = options.host ?? '127.0.0.1'
  const name = options.name ?? 'Demo Identity Provider'
  // Each provider its own copy, so changing one (a test taking alice out of admins) leaves the others alone.
  const accounts = structuredClone(options.accounts ?? DEMO_ACCOUNTS)
  const stylesheet = STYLESHEET + (options.accent !== undefined
    ? `:root { --accent: ${options.accent.light}; }\n@media (prefers-color-scheme: dark) { :root { --accent: ${options.accent.dark}; } }\n`
    : '')
  const layout = (title: string, body: SafeHtml): string => page(name, title, body)
  let dispatch: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => { res.writeHead(503).end() }
  const server = createServer((req, res) => { dispatch(req, res) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, resolve)
  })
  const { port } = server.address() as AddressInfo
  const issuer = options.issuer ?? `http://${host}:${port}`

  const key = await generateKeyPair('RS256', { extractable: true })
  const provider = new Provider(issuer, {
    clients: [{
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: [client.redirectUri],
      post_logout_redirect_uris: [client.postLogoutRedirectUri],
      // Refresh tokens: the gateway re-validates its sessions with them (OIDC_REFRESH_INTERVAL).
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      ...(client.backchannelLogoutUri !== undefined ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: true } : {})
    }],
    adapter: memoryAdapter(),
    jwks: { keys: [{ ...(await exportJWK(key.privateKey)), kid: 'demo-idp', use: 'sig', alg: 'RS256' }] },
    // Fresh per run: the provider's cookies are only for this demo's lifetime. Named after the port:
    // browsers keep cookies per host, not per port, and two demo providers on 127.0.0.1 would
    // otherwise overwrite each other's session (signing in at one would sign the user out of the other).
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: { session: `_session_${port}`, interaction: `_interaction_${port}`, resume: `_interaction_resume_${port}` }
    },
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // Profile claims in the ID Token as well as at userinfo, as Keycloak and most providers do.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    // Set explicitly (oidc-provider nags otherwise): an hour's demo, ten minutes to finish a sign-in.
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AuthorizationCode: 60, AccessToken: 600, IdToken: 600, RefreshToken: 3600 },
    // A refresh token at every sign-in (without asking for offline_access), a new one at every use.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed: (grant: string) => boolean }) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource: logoutSource(name), postLogoutSuccessSource: postLogoutSuccessSource(name) },
      backchannelLogout: { enabled: client.backchannelLogoutUri !== undefined }
    },
    // oidc-provider's outgoing requests refuse loopback addresses (SSRF protection), and the demo
    // gateway is on loopback: its back-channel logout URI, and only that origin, goes without.
    async fetch (url: string | URL, options: RequestInit & { dispatcher?: unknown }) {
      const { dispatcher, ...rest } = options
      const toGateway = client.backchannelLogoutUri !== undefined && new URL(url).origin === new URL(client.backchannelLogoutUri).origin
      return await globalThis.fetch(url, toGateway ? rest : options)
    },
    renderError: renderError(name),
    async findAccount (_ctx: unknown, sub: string) {
      const account = accounts.find((a) => a.username === sub)
      if (account === undefined) return undefined
      return {
        accountId: sub,
        claims: async () => ({ sub, preferred_username: account.username, name: account.name, email: account.email, email_verified: true, groups: account.groups })
      }
    }
  })
  provider.on('server_error', (_ctx, error) => { console.error(`${name} error:`, error) })

  const rp = new URL(client.redirectUri).origin
  const editToken = randomBytes(24).toString('base64url')
  const providerCallback = provider.callback()
  dispatch = (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!
    if (path === '/demo-idp.css') { send(res, 200, stylesheet, rp, 'text/css; charset=utf-8'); return }
    if (path === '/accounts') {
      editAccounts(req, res).catch(() => { if (!res.headersSent) send(res, 400, layout('Not changed', html`<p class="error" role="alert">Bad request.</p>`), rp); else res.destroy() })
      return
    }
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(path)
    if (m === null) { providerCallback(req, res); return }
    interaction(req, res, m[1]!, m[2] !== undefined).catch((err: Error) => {
      if (!res.headersSent) send(res, 400, layout('Sign-in failed', html`<p class="error" role="alert">${err.message}</p><p><a href="/">Start again from the application.</a></p>`), rp)
      else res.destroy()
    })
  }

  /** GET /interaction/:uid shows the form; POST /interaction/:uid/login checks it and finishes login and consent. */
  async function interaction (req: IncomingMessage, res: ServerResponse, uid: string, submitted: boolean): Promise<void> {
    const details = await provider.interactionDetails(req, res)
    if (details.uid !== uid) throw new Error('This sign-in link does not belong to this browser.')
    const clientId = String(details.params['client_id'] ?? '')
    if (!submitted) {
      if (details.prompt.name === 'consent' && details.session?.accountId !== undefined) {
        // Already signed in here; the demo grants what the gateway asks without a consent screen.
        await finish(req, res, details, details.session.accountId, clientId)
        return
      }
      send(res, 200, layout('Sign in', loginForm(accounts, uid)), rp)
      return
    }
    if (req.method !== 'POST') throw new Error('Unexpected request.')
    const form = await readForm(req)
    const username = (form.get('login') ?? '').trim().toLowerCase()
    const account = accounts.find((a) => a.username === username && a.password === form.get('password'))
    if (account === undefined) { send(res, 200, layout('Sign in', loginForm(accounts, uid, username, 'Unknown username or wrong password. The demo accounts are listed below.')), rp); return }
    await finish(req, res, details, account.username, clientId)
  }

  /**
   * GET /accounts lists the accounts with their groups; POST /accounts changes one account's groups,
   * for the gateway to pick up at its next re-validation. Development only, but still not for other
   * sites: a per-run token in the form, and the browser's Origin must be this provider's.
   */
  async function editAccounts (req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST') {
      const form = await readForm(req)
      const account = accounts.find((a) => a.username === form.get('username'))
      const token = Buffer.from(form.get('token') ?? '')
      const expected = Buffer.from(editToken)
      const sameOrigin = req.headers.origin === undefined || req.headers.origin === new URL(issuer).origin
      if (account === undefined || !sameOrigin || token.length !== expected.length || !timingSafeEqual(token, expected)) throw new Error('refused')
      account.groups = [...new Set((form.get('groups') ?? '').split(/[\s,]+/).filter((g) => /^[\w.-]{1,64}$/.test(g)))]
      res.writeHead(303, { location: '/accounts?changed=' + encodeURIComponent(account.username), 'cache-control': 'no-store' }).end()
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new Error('method')
    const changed = new URL(req.url ?? '/', issuer).searchParams.get('changed')
    send(res, 200, layout('Accounts', accountsForms(accounts, editToken, changed)), rp)
  }

  async function finish (req: IncomingMessage, res: ServerResponse, details: Awaited<ReturnType<Provider['interactionDetails']>>, accountId: string, clientId: string): Promise<void> {
    const grant = (details.grantId !== undefined ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId })
    grant.addOIDCScope(String(details.params['scope'] ?? 'openid'))
    const grantId = await grant.save()
    await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false })
  }

  return {
    issuer,
    name,
    accounts,
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}

// Pages. Deliberately a different look from authgate's: the provider is another site.

const STYLESHEET = `
:root { color-scheme: light dark; --fg: #221a2e; --muted: #5f5670; --bg: #f4f0fa; --card: #fff; --border: #d6cde6; --accent: #6b3fa0; --accent-fg: #fff; --danger: #a40e26; }
@media (prefers-color-scheme: dark) { :root { --fg: #ece6f5; --muted: #b3a8c6; --bg: #16121d; --card: #211b2b; --border: #3b3249; --accent: #b48cf0; --accent-fg: #16121d; --danger: #ff8e86; } }
* { box-sizing: border-box; }
body { margin: 0; font: 1rem/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); display: flex; justify-content: center; padding: 2rem 1rem; }
main { width: 100%; max-width: 26rem; background: var(--card); border: 1px solid var(--border); border-radius: .75rem; padding: 2rem; }
.badge { display: inline-block; font-size: .75rem; font-weight: 700; letter-spacing: .05em; text-transform: uppercase; color: var(--accent); margin-bottom: .5rem; }
h1 { font-size: 1.375rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin: 0 0 .25rem; }
input { display: block; width: 100%; font: inherit; padding: .5rem .75rem; margin: 0 0 1rem; border: 1px solid var(--muted); border-radius: .375rem; background: var(--card); color: var(--fg); }
button { font: inherit; font-weight: 600; padding: .5rem 1rem; border-radius: .375rem; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-fg); cursor: pointer; }
button.secondary { background: transparent; color: var(--accent); margin-left: .5rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.error { color: var(--danger); border: 1px solid var(--danger); border-radius: .375rem; padding: .5rem .75rem; }
table { width: 100%; border-collapse: collapse; font-size: .875rem; margin-top: 1.5rem; }
th, td { text-align: left; padding: .25rem .375rem; border-bottom: 1px solid var(--border); }
.muted { color: var(--muted); font-size: .875rem; }
`

function page (name: string, title: string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ${name}</title><link rel="stylesheet" href="/demo-idp.css"></head>
<body><main><div class="badge">${name}</div><h1>${title}</h1>${body}</main></body></html>`.value
}

function loginForm (accounts: DemoAccount[], uid: string, username = '', error?: string): SafeHtml {
  return html`${error !== undefined ? html`<p class="error" role="alert" id="idp-error">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}/login">
<label for="idp-username">Username</label>
<input id="idp-username" name="login" value="${username}" autocomplete="username" autocapitalize="none" required autofocus>
<label for="idp-password">Password</label>
<input id="idp-password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<table><caption class="muted">Demo accounts (development only)</caption>
<thead><tr><th scope="col">Username</th><th scope="col">Password</th><th scope="col">Groups</th></tr></thead>
<tbody>${accounts.map((a) => html`<tr><td>${a.username}</td><td><code>${a.password}</code></td><td>${a.groups.join(', ')}</td></tr>`)}</tbody></table>`
}

function accountsForms (accounts: DemoAccount[], token: string, changed: string | null): SafeHtml {
  return html`${changed !== null ? html`<p role="status" id="idp-changed">Groups of ${changed} changed. A signed-in gateway session sees them at its next re-validation (within OIDC_REFRESH_INTERVAL).</p>` : ''}
<p class="muted">Change an account's groups (comma-separated). <code>admins</code> makes it an administrator in authgate.</p>
${accounts.map((a) => html`<form method="post" action="/accounts"><input type="hidden" name="token" value="${token}"><input type="hidden" name="username" value="${a.username}">
<label for="groups-${a.username}">${a.username}</label><input id="groups-${a.username}" name="groups" value="${a.groups.join(', ')}"><button type="submit">Save ${a.username}</button></form>`)}`
}

// oidc-provider's own end-session pages, in this look. `form` is its <form id="op.logoutForm"> with the xsrf field.
function logoutSource (name: string) {
  return async (ctx: { body: unknown }, form: string): Promise<void> => {
    ctx.body = page(name, 'Sign out', html`<p>Sign out of the ${name} too?</p>${new SafeHtml(form) /* oidc-provider's own markup; it escapes its values */}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button><button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>`)
  }
}

function postLogoutSuccessSource (name: string) {
  return async (ctx: { body: unknown }): Promise<void> => {
    ctx.body = page(name, 'Signed out', html`<p role="status">You have signed out of the ${name}.</p>`)
  }
}

function renderError (name: string) {
  return async (ctx: { type: string, body: unknown }, out: { error?: string, error_description?: string }): Promise<void> => {
    ctx.type = 'html'
    ctx.body = page(name, 'Something went wrong', html`<p class="error" role="alert">${out.error ?? 'error'}: ${out.error_description ?? ''}</p>`)
  }
}

/**
 * `formAction`: the relying party's origin. Browsers apply form-action to every redirect after a
 * form is posted, and signing in here ends with a redirect to the gateway's callback.
 */
function send (res: ServerResponse, status: number, body: string, formAction: string, type = 'text/html; charset=utf-8'): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-security-policy': `default-src 'none'; style-src 'self'; form-action 'self' ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'x-content-type-options': 'nosniff'
  })
  res.end(body)
}

async function readForm (req: IncomingMessage): Promise<URLSearchParams> {
  let body = ''
  for await (const chunk of req) {
    body += String(chunk)
    if (body.length > 16 * 1024) throw new Error('Form too large.')
  }
  return new URLSearchParams(body)
}

type Adapter = Record<string, (...args: never[]) => Promise<unknown>>

/** In-memory storage for one provider (oidc-provider's built-in one warns on every start). */
function memoryAdapter (): (model: string) => Adapter {
  const store = new Map<string, { payload: Record<string, unknown>, expiresAt: number }>()
  const sessionsByUid = new Map<string, string>()
  return (model) => {
    const key = (id: string): string => `${model}:${id}`
    const live = (k: string): Record<string, unknown> | undefined => {
      const entry = store.get(k)
      if (entry === undefined || entry.expiresAt > Date.now()) return entry?.payload
      store.delete(k)
      return undefined
    }
    return {
      upsert: async (id: string, payload: Record<string, unknown>, expiresIn?: number) => {
        store.set(key(id), { payload, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity })
        if (model === 'Session' && typeof payload['uid'] === 'string') sessionsByUid.set(payload['uid'], id)
      },
      find: async (id: string) => live(key(id)),
      findByUid: async (uid: string) => { const id = sessionsByUid.get(uid); return id === undefined ? undefined : live(key(id)) },
      findByUserCode: async () => undefined,
      consume: async (id: string) => { const p = live(key(id)); if (p !== undefined) p['consumed'] = Math.floor(Date.now() / 1000) },
      destroy: async (id: string) => { store.delete(key(id)) },
      revokeByGrantId: async (grantId: string) => { for (const [k, v] of store) if (v.payload['grantId'] === grantId) store.delete(k) }
    }
  }
}
