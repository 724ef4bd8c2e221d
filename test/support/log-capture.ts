// The gateway's log lines, captured for assertions: a real pino logger with the gateway's own options.
import { pino } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { loggerOptions } from '../../src/logger.js'

export function logCapture (level = 'info'): { logger: FastifyBaseLogger, lines: () => Array<Record<string, unknown>> } {
  const lines: string[] = []
  const logger = pino(loggerOptions(level), { write: (line: string) => { lines.push(line) } })
  return { logger, lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) }
}
