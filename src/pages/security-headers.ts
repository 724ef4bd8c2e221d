import type { FastifyReply } from 'fastify'

/** Headers for every page the gateway itself serves (never for proxied responses). */
export function setPageSecurityHeaders (reply: FastifyReply, formActions: string[] = []): void {
  reply.headers({
    'content-security-policy': ["default-src 'none'", "style-src 'self'", "img-src 'self' data:", `form-action 'self'${formActions.map((a) => ' ' + a).join('')}`, "frame-ancestors 'none'", "base-uri 'none'"].join('; '),
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cache-control': 'no-store'
  })
}
