// External programs some tests drive for real (nginx, python3 with or without Flask). Found: the
// test runs. Absent: it is skipped with a notice, except in CI (CI=true), where .ci/run installs
// them and their absence is a failure, so a broken CI image cannot pass by skipping.
import { spawnSync } from 'node:child_process'

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1'

function runs (command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 20_000 })
  return result.status === 0
}

/**
 * A python3 that can run `code`. `python3` on PATH may be a pyenv build without Debian's packages
 * (python3-flask), so /usr/bin/python3 is tried as well.
 */
export function findPython (code = 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3', '/usr/local/bin/python3']) {
    if (runs(candidate, ['-c', code])) return candidate
  }
  return undefined
}

export function findNginx (): string | undefined {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (runs(candidate, ['-v'])) return candidate
  }
  return undefined
}

interface Tapish {
  fail: (message: string) => unknown
  comment: (message: string) => unknown
  test: (name: string, options: { skip: string }, fn: () => Promise<void>) => unknown
}

/**
 * When `found` is undefined: in CI a failure, elsewhere one skipped test whose name says why.
 * Returns whether the caller should go on.
 */
export function requireTool (t: Tapish, what: string, found: string | undefined, install: string): found is string {
  if (found !== undefined) return true
  const reason = `${what} not found (${install})`
  if (IN_CI) {
    t.fail(`${reason}: required when CI=true`)
  } else {
    t.comment(`NOTICE: ${reason}; skipping these tests (they fail instead when CI=true)`)
    t.test(what, { skip: reason }, async () => {})
  }
  return false
}
