// `authgate secrets generate`: fresh secrets as .env lines, the same strength the server asks for.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import type { Out } from './usage.js'

/** 48 random bytes (what `openssl rand -base64 48` gives), base64url: no quoting needed in .env or YAML. */
function secret (): string {
  return randomBytes(48).toString('base64url')
}

/**
 * `authgate secrets generate [--jwt-key]`: prints fresh `SECRET_KEY` and `HEADER_SIGNING_SECRET`
 * lines (48 random bytes each, base64url, two different values) and, with --jwt-key, an
 * `IDENTITY_JWT_KEY` line: a new EC P-256 private key as one line with literal `\n`s, which the
 * gateway reads back as line breaks. Touches no file and no database.
 *
 * @param options - `jwtKey`: also print IDENTITY_JWT_KEY (for IDENTITY_JWT=true)
 * @param out - one .env line per call (stdout)
 * @returns 0 (it cannot fail short of the process running out of entropy or memory)
 * @example
 * ```sh
 * npx authgate secrets generate --jwt-key >> .env
 * ```
 */
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
