// The built-in demo upstream (development only, when UPSTREAM_URL is unset): shows the identity the
// gateway forwarded and whether its signature verifies, exactly as a real application would check it.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { verifyIdentityHeaders } from '../verify/index.js'
import { html } from '../pages/html.js'
import { page } from '../pages/layout.js'

export interface DemoUpstream { url: URL, server: Server, close: () => Promise<void> }

export function demoPage (request: IncomingMessage, secret: string): string {
  const result = verifyIdentityHeaders(request.headers, secret)
  const shown = ['x-user', 'x-admin', 'x-email', 'x-full-name', 'x-groups', 'x-auth-timestamp', 'x-auth-signature', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']
  const rows = shown.map((name) => html`<tr><th scope="row"><code>${name}</code></th><td><code>${String(request.headers[name] ?? '')}</code></td></tr>`)
  const verdict = result.ok
    ? html`<p class="ok" role="status">✔ Signature verified: signed ${Math.floor(Date.now() / 1000) - result.identity.timestamp}s ago with HEADER_SIGNING_SECRET.</p>
<dl><dt>Username</dt><dd>${result.identity.username}</dd><dt>Administrator</dt><dd>${result.identity.isAdmin ? 'yes' : 'no'}</dd>
<dt>Email</dt><dd>${result.identity.email ?? '—'}</dd><dt>Full name</dt><dd>${result.identity.fullName ?? '—'}</dd>
<dt>Groups</dt><dd>${result.identity.groups.length > 0 ? result.identity.groups.join(', ') : '—'}</dd></dl>`
    : html`<p class="alert" role="alert">✘ Signature NOT verified (${result.reason}): ${result.message}</p>`
  // Sign out is a plain link to /logout, as TimeTracker's: from the application's own page (same
  // origin) the gateway signs out in one click, whatever the browser sends.
  return page({
    title: 'Demo upstream',
    appName: 'authgate demo',
    wide: true,
    body: html`<h1>${result.ok ? html`Hello, ${result.identity.fullName ?? result.identity.username}` : 'Demo upstream'}</h1>
<p class="lead">This is authgate's built-in demo application, not yours. Set UPSTREAM_URL to protect your own.</p>
${verdict}
<table><caption class="visually-hidden">Headers the application received</caption><tbody>${rows}</tbody></table>
<p><a class="button secondary" href="/logout">Sign out</a></p>`
  })
}

export async function startDemoUpstream (secret: string): Promise<DemoUpstream> {
  const server = createServer((request, response) => {
    request.resume()
    if (request.url === '/favicon.ico') { response.writeHead(404).end(); return }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    response.end(demoPage(request, secret))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: new URL(`http://127.0.0.1:${port}/`),
    server,
    close: async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) })
  }
}
