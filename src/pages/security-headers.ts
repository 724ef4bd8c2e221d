/**
 * Headers for every page the gateway itself serves (never for proxied responses). The pages have no
 * scripts (but those offering passkeys: allowOwnScripts) and load only the gateway's own stylesheet and images, so the policy can be strict:
 * nothing inline, nothing from elsewhere, except the origins listed (a form posting to the IdP, a
 * LOGO_URL on another host).
 */
/** Any Fastify reply (the proxy's replies are typed for HTTP/2 as well). */
interface HeaderTarget { headers: (values: Record<string, string>) => unknown }

export function setPageSecurityHeaders (reply: HeaderTarget, formActions: string[] = [], imgSources: string[] = []): void {
  reply.headers({
    'content-security-policy': contentSecurityPolicy(formActions, imgSources),
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cache-control': 'no-store'
  })
}

export function contentSecurityPolicy (formActions: string[] = [], imgSources: string[] = [], frameAncestors: string[] = [], scripts = false): string {
  const extra = (sources: string[]): string => sources.map((s) => ' ' + s).join('')
  // The passkey pages' scripts: the gateway's own files only (never inline), talking to the gateway only.
  const scriptSources = scripts ? ["script-src 'self'", "connect-src 'self'"] : []
  return ["default-src 'none'", ...scriptSources, "style-src 'self'", `img-src 'self' data:${extra(imgSources)}`, `form-action 'self'${extra(formActions)}`,
    `frame-ancestors ${frameAncestors.length > 0 ? frameAncestors.join(' ') : "'none'"}`, "base-uri 'none'"].join('; ')
}

/**
 * A page with the gateway's own scripts (passkeys: WebAuthn needs JavaScript): the same policy, plus
 * scripts and fetches from the gateway's origin. Nothing inline, nothing from elsewhere.
 */
export function allowOwnScripts (reply: HeaderTarget, imgSources: string[] = []): void {
  reply.headers({ 'content-security-policy': contentSecurityPolicy([], imgSources, [], true) })
}

/**
 * The one page another site may frame: front-channel logout, which the IdP loads in an iframe. Only
 * the IdP's origin may (clickjacking elsewhere stays impossible); X-Frame-Options, which cannot name
 * an origin, is left out, so that it does not block what the policy allows.
 */
export function allowFramingBy (reply: HeaderTarget & { removeHeader: (name: string) => unknown }, origin: string): void {
  reply.headers({ 'content-security-policy': contentSecurityPolicy([], [], [origin]) })
  reply.removeHeader('x-frame-options')
}
