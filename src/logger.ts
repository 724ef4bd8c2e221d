// The process logger: pino, with nothing secret in it. Request lines carry the path only (query
// strings can hold authorization codes and application tokens), and credentials are redacted.
import { pino, type Logger, type LoggerOptions } from 'pino'

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

export function createLogger (level: string): Logger {
  return pino(loggerOptions(level))
}
