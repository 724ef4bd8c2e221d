// Who counts as one client, for every per-client limit (sign-in throttling, the share of the upstream
// pool): without it, one IPv6 host walks the addresses of its /64 and gets a fresh budget with each.
import { isIPv4, isIPv6 } from 'node:net'

/**
 * The address a client is counted by: IPv4 as is, an IPv4-mapped IPv6 address as its IPv4 address,
 * other IPv6 addresses by their /64 (one host usually holds a whole /64, and walks it for free).
 */
export function clientAddressKey (ip: string): string {
  const address = ip.split('%', 1)[0]!.toLowerCase()
  if (isIPv4(address) || !isIPv6(address)) return address
  const groups = ipv6Groups(address)
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.')
  }
  return groups.slice(0, 4).map((g) => g.toString(16)).join(':') + '::/64'
}

/** The eight 16-bit groups of a valid IPv6 address (`isIPv6`), `::` and a dotted IPv4 tail expanded. */
function ipv6Groups (address: string): number[] {
  let text = address
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number]
    text = text.slice(0, dotted.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16)
  }
  const parse = (part: string | undefined): number[] => part === undefined || part === '' ? [] : part.split(':').map((h) => parseInt(h, 16))
  const [head, tail] = text.split('::')
  const before = parse(head)
  const after = parse(tail)
  return [...before, ...Array<number>(8 - before.length - after.length).fill(0), ...after]
}
