// The gateway's own pages: the application's name and logo.
import { statSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { isLoopbackHost } from './net.js'
import type { Fail, Reader } from './environment.js'
import { optionalUrl } from './parse.js'

/** The logo on the gateway's pages: `src` is what the page's <img> loads. */
export interface LogoConfig {
  src: string
  /** LOGO_FILE: served by the gateway at `src` (under /_authgate/static/). */
  file?: { path: string, contentType: string }
  /** LOGO_URL on another origin: allowed by the pages' Content-Security-Policy (img-src). */
  origin?: string
}

export interface PagesConfig {
  appName: string
  logo: LogoConfig | undefined
}

export function parsePages (r: Reader, cwd: string): PagesConfig {
  return { appName: r.get('APP_NAME') ?? 'authgate', logo: parseLogo(r.get('LOGO_URL'), r.get('LOGO_FILE'), cwd, r.fail) }
}

/** Image types a logo may have, by file extension (what the browser is told it is). */
export const LOGO_TYPES: Record<string, string> = {
  '.png': 'image/png', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif'
}
const MAX_LOGO_BYTES = 512 * 1024

function parseLogo (url: string | undefined, file: string | undefined, cwd: string, fail: Fail): LogoConfig | undefined {
  if (url !== undefined && file !== undefined) return fail('LOGO_URL', 'set together with LOGO_FILE; set only one of them')
  if (file !== undefined) {
    const path = resolve(cwd, file)
    const ext = extname(path).toLowerCase()
    const contentType = LOGO_TYPES[ext]
    if (contentType === undefined) return fail('LOGO_FILE', `must be an image file ending in ${Object.keys(LOGO_TYPES).join(', ')}`)
    let size: number
    try {
      const stat = statSync(path)
      if (!stat.isFile()) return fail('LOGO_FILE', `${file} is not a file`)
      size = stat.size
    } catch (err) {
      return fail('LOGO_FILE', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a readable image file`)
    }
    if (size > MAX_LOGO_BYTES) return fail('LOGO_FILE', `${file} is larger than ${MAX_LOGO_BYTES / 1024} KiB; use a smaller image`)
    return { src: `/_authgate/static/logo${ext === '.jpeg' ? '.jpg' : ext}`, file: { path, contentType } }
  }
  if (url === undefined) return undefined
  // A same-origin path (e.g. the application's own static logo, listed in SKIP_AUTH_PATHS) ...
  if (url.startsWith('/') && !url.startsWith('//') && !/[\\\s"'<>]/.test(url)) return { src: url }
  // ... or an https URL, whose origin the pages' Content-Security-Policy then allows for images.
  const parsed = optionalUrl('LOGO_URL', url, ['https:', 'http:'], fail)
  if (parsed === undefined) return undefined
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
    return fail('LOGO_URL', 'must be a path such as /static/logo.png or an https:// URL (http:// only on loopback hosts)')
  }
  return { src: parsed.href, origin: parsed.origin }
}
