// The process logger: pino, with nothing secret in it. Request lines carry the path only (query
// strings can hold authorization codes and application tokens), and credentials are redacted.
// JSON for log collectors; readable lines for a person at a terminal (log-format.ts).
import { pino, type Logger, type LoggerOptions } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>
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

/** Longest a JSON log line waits in the process before it is written (see jsonDestination). */
export const LOG_FLUSH_INTERVAL_MS = 100

/**
 * Standard output for JSON lines, written in batches of up to 4 KB, at most
 * {@link LOG_FLUSH_INTERVAL_MS} late, and all of them when the process exits (pino flushes an
 * asynchronous destination at exit): a write per line made every proxied request's access line a
 * system call of its own.
 */
function jsonDestination (): ReturnType<typeof pino.destination> {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 })
  // A destroyed destination (the process is ending) throws on flush.
  setInterval(() => { if ((destination as { destroyed?: boolean }).destroyed !== true) destination.flush() }, LOG_FLUSH_INTERVAL_MS).unref()
  return destination
}

export function createLogger (level: string, format: LogFormat = 'auto'): Logger {
  return isPretty(format) ? pino(loggerOptions(level), prettyDestination()) : pino(loggerOptions(level), jsonDestination())
}

type Bindings = Record<string, unknown>
type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
/** What a request logger needs of its parent: pino's, or anything with child() (Fastify's silent logger). */
type Parent = FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }

/**
 * A request's logger (`request.log`), made only once something is logged through it at an enabled
 * level. Fastify makes a child logger per request; with the redaction above, making one cost more
 * than most of the gateway's own work on a proxied request, whose only line, the access line, does
 * not need it (app.ts). Until then, the level is the parent's.
 */
export class RequestLogger {
  private made: FastifyBaseLogger | undefined

  constructor (private readonly parent: Parent & { isLevelEnabled: (level: string) => boolean }, private readonly bindings: Bindings) {}

  private real (): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings)
    return this.made
  }

  get level (): string { return this.made?.level ?? this.parent.level }
  set level (level: string) { this.real().level = level }

  isLevelEnabled (level: string): boolean {
    return this.made !== undefined ? (this.made as Parent).isLevelEnabled?.(level) !== false : this.parent.isLevelEnabled(level)
  }

  private log (level: LevelName, args: unknown[]): void {
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return
    ;(this.real()[level] as (...a: unknown[]) => void)(...args)
  }

  fatal (...args: unknown[]): void { this.log('fatal', args) }
  error (...args: unknown[]): void { this.log('error', args) }
  warn (...args: unknown[]): void { this.log('warn', args) }
  info (...args: unknown[]): void { this.log('info', args) }
  debug (...args: unknown[]): void { this.log('debug', args) }
  trace (...args: unknown[]): void { this.log('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(bindings, options)
  }
}

/** Fastify's childLoggerFactory: a {@link RequestLogger} when the parent is pino (route options other than none: a plain child). */
export function requestLoggerFactory (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  const parent = logger as Parent
  if (typeof parent.isLevelEnabled !== 'function' || Object.keys(options).length > 0) return logger.child(bindings, options)
  return new RequestLogger(parent as Parent & { isLevelEnabled: (level: string) => boolean }, bindings) as unknown as FastifyBaseLogger
}

/** Whether `log` writes at info (a request logger muted after a hang-up does not). */
export function isInfoEnabled (log: FastifyBaseLogger): boolean {
  const { isLevelEnabled } = log as Parent
  return typeof isLevelEnabled === 'function' ? isLevelEnabled.call(log, 'info') : log.level !== 'silent'
}

/**
 * The access line's logger: the redaction's wildcard paths make pino copy and walk every object it
 * logs, which cost more than the rest of the line; the access line's few fields (method, the path
 * without its query, status, time, request id) hold nothing to redact.
 */
export function accessLogger (log: FastifyBaseLogger): FastifyBaseLogger {
  return log.child({}, { redact: [] } as ChildLoggerOptions)
}
