// `authgate config check`: the server's own loadConfig on the same environment (and ./.env), so
// the verdict is the server's; then the settings in effect, secrets masked. Writes nothing.
import { ConfigError, loadConfig, readEnvironment } from '../config/index.js'
import { describeConfig, type Setting } from '../config/describe.js'
import { configErrorReport, configWarnings } from '../config/warnings.js'
import type { Out } from './usage.js'

/**
 * `authgate config check [--json]`: loads the configuration from the environment and ./.env with the
 * server's own loadConfig and prints every setting in effect with its source (environment, .env,
 * `<NAME>_FILE`, default), secrets masked, then any startup warnings. Writes nothing: development
 * secrets are not generated, no database is opened.
 *
 * @param options - `json`: print `{ valid, mode, settings, warnings }` (or `{ valid: false, problems }`)
 *   as JSON instead of the `NAME=value  # source` lines
 * @param out - the report (stdout)
 * @param err - the refusal message (stderr)
 * @returns 0 when the server would start with this configuration; 2 when it would refuse to, after
 *   printing the server's own message naming every bad variable (and, with --json, the problems)
 * @throws any error other than a ConfigError (a bug, not a configuration problem): exit 1
 * @example
 * ```sh
 * NODE_ENV=production npx authgate config check
 * ```
 */
export async function configCheck (options: { json: boolean }, out: Out, err: Out = (l) => { process.stderr.write(l + '\n') }): Promise<number> {
  let config
  try {
    config = loadConfig(process.env, { writeDevSecrets: false })
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    if (options.json) out(JSON.stringify({ valid: false, problems: e.problems }, null, 2))
    err(`authgate: the server would refuse to start.\n${configErrorReport(e)}`)
    return 2
  }
  const { values } = readEnvironment(process.env)
  const settings = describeConfig(config, process.env, values)
  const warnings = configWarnings(config, { check: true }).map((w) => w.message)
  if (options.json) {
    out(JSON.stringify({ valid: true, mode: config.production ? 'production' : 'development', settings, warnings }, null, 2))
    return 0
  }
  out(`Configuration valid (${config.production ? 'production' : 'development'}). Settings in effect, secrets masked:`)
  out('')
  const shown = settings.filter((s) => s.value !== undefined || s.source !== 'default')
  const width = Math.max(...shown.map((s) => line(s).length))
  for (const s of shown) out(`  ${line(s).padEnd(width)}  # ${s.value === undefined ? `${s.source}; not used with this configuration` : s.source}`)
  if (warnings.length > 0) {
    out('')
    out('Warnings:')
    for (const w of warnings) out(`  - ${w}`)
  }
  return 0
}

/** NAME=value as an .env line would hold it (quoted when it has spaces or #). */
function line (s: Setting): string {
  if (s.value === undefined) return s.name
  return `${s.name}=${/[\s#"']/.test(s.value) && !s.value.startsWith('[') ? JSON.stringify(s.value) : s.value}`
}
