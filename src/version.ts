// The package's version, for `authgate --version` and the server's: package.json is found above
// this file, in a checkout (src/) and in the built package (dist/src/) alike.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'authgate' && pkg.version !== undefined) return pkg.version
    } catch {
      // not here: look one directory up
    }
    const parent = dirname(dir)
    if (parent === dir) return 'unknown'
    dir = parent
  }
}
