// `authgate secrets generate`: fresh secrets as .env lines, the same strength the server asks for.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import type { Out } from './usage.js'

/** 48 random bytes (what `openssl rand -base64 48` gives), base64url: no quoting needed in .env or YAML. */
function secret (): string {
  return randomBytes(48).toString('base64url')
}

export function generateSecrets (options: { jwtKey: boolean }, out: Out): number {
  out(`SECRET_KEY=${secret()}`)
  // Always a different value: the upstream holds this one and must not be able to forge sessions.
  out(`HEADER_SIGNING_SECRET=${secret()}`)
  if (options.jwtKey) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString().trim()
    // One line with literal \n, which the gateway reads back as newlines (an .env value is one line).
    out(`IDENTITY_JWT_KEY=${pem.replace(/\n/g, '\\n')}`)
  }
  return 0
}
