// What the gateway logs.
import type { Reader } from './environment.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface LoggingConfig {
  logLevel: string
}

export function parseLogging (r: Reader): LoggingConfig {
  const logLevel = r.get('LOG_LEVEL') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) r.fail('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`)
  return { logLevel }
}
