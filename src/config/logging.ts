// What the gateway logs.
import type { Reader } from './environment.js'
import { oneOf } from './parse.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface LoggingConfig {
  logLevel: string
  /** auto: readable lines on a terminal, JSON otherwise (LOG_FORMAT). */
  logFormat: 'auto' | 'json' | 'pretty'
}

export function parseLogging (r: Reader): Partial<LoggingConfig> {
  const logLevel = r.get('LOG_LEVEL') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) r.fail('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`)
  const logFormat = oneOf('LOG_FORMAT', r.get('LOG_FORMAT') ?? 'auto', ['auto', 'json', 'pretty'] as const, r.fail)
  return { logLevel, logFormat }
}
