// Log lines for a person at a terminal: the same pino records as the JSON output, one short line
// each (time, level, message, then the fields), colours only on a terminal that wants them. A few
// lines of our own rather than pino-pretty: synchronous, no worker thread, no dependency tree.
import type { DestinationStream } from 'pino'

const LEVELS: Record<number, { name: string, colour: string }> = {
  10: { name: 'TRACE', colour: '90' },
  20: { name: 'DEBUG', colour: '36' },
  30: { name: 'INFO ', colour: '32' },
  40: { name: 'WARN ', colour: '33' },
  50: { name: 'ERROR', colour: '31' },
  60: { name: 'FATAL', colour: '35' }
}

/** Fields every line has, or that the line itself already shows. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'reqId'])

function value (v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  return JSON.stringify(v) ?? String(v)
}

function time (epochMs: unknown): string {
  const d = typeof epochMs === 'number' ? new Date(epochMs) : new Date()
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

/** One pino JSON record as one line (an error's stack follows, indented). */
export function formatLine (json: string, colour: boolean): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const paint = (code: string, text: string): string => colour ? `\u001b[${code}m${text}\u001b[0m` : text
  const level = LEVELS[record.level as number] ?? { name: String(record.level), colour: '0' }
  let message = String(record.msg ?? '')
  const fields = { ...record }
  // The access line: "GET /path 200 12ms", the way people read them.
  if (message === 'request' && typeof record.method === 'string') {
    message = `${record.method} ${String(record.path)} ${String(record.status)} ${String(record.ms)}ms`
    for (const key of ['method', 'path', 'status', 'ms']) Reflect.deleteProperty(fields, key)
  }
  let stack = ''
  const err = fields.err as { message?: string, stack?: string } | undefined
  if (err !== null && typeof err === 'object' && typeof err.stack === 'string') {
    Reflect.deleteProperty(fields, 'err')
    fields.error = err.message
    stack = '\n' + paint('2', err.stack.split('\n').slice(1).map((l) => `    ${l.trim()}`).join('\n'))
  }
  const rest = Object.entries(fields).filter(([key]) => !HIDDEN.has(key)).map(([key, v]) => `${paint('2', key + '=')}${value(v)}`)
  return `${paint('2', time(record.time))} ${paint(level.colour, level.name)} ${message}${rest.length > 0 ? '  ' + rest.join(' ') : ''}${stack}\n`
}

/** A pino destination writing formatted lines to `out` (stdout by default). */
export function prettyDestination (out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): DestinationStream {
  // https://no-color.org: any non-empty NO_COLOR turns colours off.
  const colour = out.isTTY === true && (process.env.NO_COLOR ?? '') === ''
  return { write: (line: string) => { out.write(formatLine(line, colour)) } }
}
