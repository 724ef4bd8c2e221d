import { ConfigError, loadConfig, type Env } from '../../src/config/index.js'

/** The names of the variables loadConfig refuses for this environment (none: []). */
export function configProblems (env: Env, cwd: string): string[] {
  try {
    loadConfig(env, { cwd, dotenv: false })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.name)
    throw err
  }
  return []
}
