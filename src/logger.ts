// The process logger: pino, with nothing secret in it. Request lines carry the path only (query
// strings can hold authorization codes and application tokens), and credentials are redacted.
// JSON for log collectors; readable lines for a person at a terminal (log-format.ts).
import { pino, type Logger, type LoggerOptions } from 'pino'
import { prettyDestination } from './log-format.js'

export type LogFormat = 'auto' | 'json' | 'pretty'

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: ['req.headers.cookie', 'req.headers.authorization', 'res.headers["set-cookie"]', '*.password', '*.client_secret', '*.id_token', '*.access_token', '*.refresh_token'], censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string, url?: string, ip?: string, socket?: { remoteAddress?: string } }) => ({
        method: req.method,
        path: (req.url ?? '').split('?', 1)[0],
        remoteAddress: req.ip ?? req.socket?.remoteAddress
      })
    }
  }
}

/** LOG_FORMAT=auto: readable on a terminal, JSON when the output goes to a file, a pipe or a collector. */
export function isPretty (format: LogFormat = 'auto'): boolean {
  return format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true)
}

export function createLogger (level: string, format: LogFormat = 'auto'): Logger {
  return isPretty(format) ? pino(loggerOptions(level), prettyDestination()) : pino(loggerOptions(level))
}
