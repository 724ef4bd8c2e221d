// Request ids: each request's `reqId` in the logs (the audit events' included), sent to the upstream
// and returned to the client as X-Request-Id. An incoming X-Request-Id is believed only from a peer
// TRUST_PROXY lists (the front proxy that made it): any other client could otherwise choose the id
// under which its requests are logged, to blur them with someone else's.
import { randomUUID } from 'node:crypto'
import { BlockList, isIPv4 } from 'node:net'
import type { IncomingMessage } from 'node:http'
import type { TrustProxy } from '../config/index.js'

/** What a front proxy's id looks like (UUIDs, hex, ULIDs and the like); anything else gets a fresh id. */
const ACCEPTABLE_ID = /^[\w.:/+=@-]{1,128}$/

/** Fastify's genReqId: the trusted peer's X-Request-Id, or a fresh UUID. */
export function requestIdGenerator (trustProxy: TrustProxy): (req: IncomingMessage) => string {
  const trusted = trustedPeer(trustProxy)
  return (req) => {
    const incoming = req.headers['x-request-id']
    if (typeof incoming === 'string' && ACCEPTABLE_ID.test(incoming) && trusted(req.socket.remoteAddress)) return incoming
    return randomUUID()
  }
}

/** Whether a socket peer is one of TRUST_PROXY's (as Fastify reads it: true trusts all, false none). */
export function trustedPeer (trustProxy: TrustProxy): (address: string | undefined) => boolean {
  if (trustProxy === true) return () => true
  if (trustProxy === false) return () => false
  const list = new BlockList()
  for (const entry of trustProxy) {
    const [address, prefix] = entry.split('/') as [string, string | undefined]
    const type = isIPv4(address) ? 'ipv4' : 'ipv6'
    if (prefix === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(prefix), type)
  }
  // BlockList matches an IPv4-mapped IPv6 peer (::ffff:10.0.0.1) against the IPv4 entries too.
  return (address) => address !== undefined && list.check(address.split('%', 1)[0]!, isIPv4(address) ? 'ipv4' : 'ipv6')
}
