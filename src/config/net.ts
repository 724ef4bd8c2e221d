import { isIP } from 'node:net'

/**
 * localhost, 127.0.0.0/8 and ::1 (docs/PROTOCOL.md#http-issuers-loopback-only): the only hosts where plain http:// to an IdP is
 * acceptable. Not `*.localhost`: Node resolves those through the system resolver, which need not
 * answer with a loopback address.
 */
export function isLoopbackHost (hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1'
  return false
}
