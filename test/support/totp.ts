// RFC 6238 TOTP codes for tests, written from the RFC with node:crypto alone: independent of the
// gateway's own TOTP module (@otplib), so a test agreeing with the gateway proves both agree with the RFC.
import { createHmac } from 'node:crypto'

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

export function base32Decode (input: string): Buffer {
  let bits = ''
  for (const c of input.replace(/=+$/, '').toUpperCase()) {
    const v = BASE32.indexOf(c)
    if (v < 0) throw new Error(`not base32: ${c}`)
    bits += v.toString(2).padStart(5, '0')
  }
  const bytes: number[] = []
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(bytes)
}

/** The 6-digit HMAC-SHA-1 code of `secret` (base32) for the 30-second step containing `unixMs`. */
export function totpCode (secret: string, unixMs: number, stepOffset = 0): string {
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(unixMs / 30_000) + stepOffset))
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest()
  const offset = mac[mac.length - 1]! & 0x0f
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0')
}
