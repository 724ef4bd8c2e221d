// Where the settings come from (the process environment over ./.env, secrets from <NAME>_FILE) and
// how they are read: every module of the configuration reads through one Reader and reports its
// problems to the same list, so the operator sees them all in one message, not one per restart.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseDotenv } from 'dotenv'
import { KNOWN_VARIABLES, SECRET_VARIABLES } from './variables.js'

export type Env = Record<string, string | undefined>

export interface LoadOptions {
  /** Directory holding .env and the default ./data (the working directory). */
  cwd?: string
  /** Read ./.env (default true); tests turn it off to stay hermetic. */
  dotenv?: boolean
}

export interface ConfigProblem { name: string, message: string }

export class ConfigError extends Error {
  constructor (readonly problems: ConfigProblem[]) {
    super('Invalid configuration:\n' + problems.map((p) => `  - ${p.name}: ${p.message}`).join('\n'))
    this.name = 'ConfigError'
  }
}

export type Fail = (name: string, message: string) => undefined

/** Merge process env over .env, then resolve every `<NAME>_FILE` (an explicit value wins a conflict check). */
export function readEnvironment (env: Env, options: LoadOptions = {}): { values: Env, problems: ConfigProblem[] } {
  const cwd = options.cwd ?? process.cwd()
  const problems: ConfigProblem[] = []
  let fromFile: Env = {}
  if (options.dotenv !== false) {
    try {
      fromFile = parseDotenv(readFileSync(resolve(cwd, '.env')))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        problems.push({ name: '.env', message: `cannot be read (${(err as Error).message})` })
      }
    }
  }
  const values: Env = { ...fromFile, ...env }
  for (const name of SECRET_VARIABLES) {
    const filePath = values[`${name}_FILE`]
    if (filePath === undefined || filePath === '') continue
    if (values[name] !== undefined && values[name] !== '') {
      problems.push({ name: `${name}_FILE`, message: `set together with ${name}; set only one of them` })
      continue
    }
    try {
      values[name] = readFileSync(resolve(cwd, filePath), 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      problems.push({ name: `${name}_FILE`, message: `cannot read ${filePath} (${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a readable file holding the secret` })
    }
  }
  return { values, problems }
}

export interface Reader {
  /** A setting: empty is the same as unset (its default applies). */
  get: (name: string) => string | undefined
  /**
   * A comma-separated list (SPEC §7): unset takes the default, but set to empty (or only commas and
   * spaces) is the empty list. `ADMIN_USERNAMES=` means no admins by name, never the default `admin`.
   */
  getList: (name: string, whenUnset?: string[], separator?: RegExp) => string[]
  fail: Fail
  /** Every problem so far (secrets are generated only once there are none). */
  problems: readonly ConfigProblem[]
  /** Every name read, besides the list in variables.ts: what the typo warning counts as known. */
  known: ReadonlySet<string>
}

export function createReader (values: Env, problems: ConfigProblem[]): Reader {
  // Every name read counts as known for the typo warning, besides the list in variables.ts (which
  // also covers the names read only under some settings).
  const known = new Set(KNOWN_VARIABLES)
  const read = (name: string): string | undefined => {
    known.add(name)
    return values[name]?.trim()
  }
  return {
    get: (name) => {
      const v = read(name)
      return v === undefined || v === '' ? undefined : v
    },
    getList: (name, whenUnset = [], separator = /,/) => {
      const v = read(name)
      return v === undefined ? whenUnset : v.split(separator).map((s) => s.trim()).filter((s) => s !== '')
    },
    fail: (name, message) => { problems.push({ name, message }); return undefined },
    problems,
    known
  }
}
