import { ConfigError, loadConfig, type ConfigProblem, type Env } from '../../src/config/index.js'

/** What loadConfig refuses in this environment (none: []); any other error is thrown. */
function refusedProblems (env: Env, cwd: string): ConfigProblem[] {
  try {
    loadConfig(env, { cwd, dotenv: false })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

/** The names of the variables loadConfig refuses for this environment (none: []). */
export function configProblems (env: Env, cwd: string): string[] {
  return refusedProblems(env, cwd).map((p) => p.name)
}

/** The refusal's lines as the operator reads them (`NAME: message`), or [] when the configuration loads. */
export function configRefusal (env: Env, cwd: string): string[] {
  return refusedProblems(env, cwd).map((p) => `${p.name}: ${p.message}`)
}
