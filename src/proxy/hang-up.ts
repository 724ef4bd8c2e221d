// Guards the upstream connection pool against clients that hang up before their answer has begun.
// @fastify/reply-from cancels an upstream request only through its response body, which Fastify
// destroys with the client's connection; a request still waiting for the upstream's headers (a
// long-poll, a slow page) has no body yet, so it kept its pool connection until the upstream
// answered (up to the pool's 5-minute headers timeout), while the client's per-address share was
// already released. One anonymous client on a SKIP_AUTH_PATHS prefix could open and abandon requests
// until every pool connection was held. Now each proxied request carries an abort signal that fires
// when its response closes unfinished (the client left, or the gateway cut it off), and the pool
// hands it to undici, which cancels the request and frees (closes) its connection.
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'

/** Why an upstream request was cancelled: nobody is waiting for its answer any more. */
export class ClientGoneError extends Error {
  readonly code = 'AUTHGATE_CLIENT_GONE'
  constructor () {
    super('the client closed the connection before the answer was complete')
    this.name = 'ClientGoneError'
  }
}

/**
 * What undici accepts as a request's `signal` (an EventEmitter with `aborted`, `reason` and an
 * 'abort' event): a plain EventEmitter, since every proxied request makes one and an AbortController
 * (an EventTarget) cost several times as much per request (docs/PERFORMANCE.md).
 */
export class ClientSignal extends EventEmitter {
  aborted = false
  reason: Error | undefined
  /**
   * The upstream failed this request (refused, reset, timed out, or cut its answer short), and that
   * was logged: the response closing unfinished is then no client hang-up.
   */
  upstreamFailed = false
  /** While reply-from hears of an upstream failure: the request's own logger (its current one is muted). */
  failureLog: FastifyBaseLogger | undefined

  constructor (private readonly request?: { log: FastifyBaseLogger }) {
    super()
  }

  abort (reason: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.emit('abort')
  }

  /**
   * Runs `report` (reply-from's handling of a failed upstream request) with the request's logger
   * muted below errors: reply-from logs every failure as a warning with the error's whole stack
   * before it calls the proxy's onError, which logs it once, with its reason, on `failureLog`.
   */
  reportFailure (report: () => void): void {
    const request = this.request
    if (request === undefined) { report(); return }
    const log = request.log
    const muted = log.child({}, { level: 'error' })
    request.log = muted
    this.failureLog = log
    try {
      report()
    } finally {
      // Unless something muted it for good meanwhile (a client that left, a body too slow).
      if (request.log === muted) request.log = log
      this.failureLog = undefined
    }
  }
}

/**
 * A signal that aborts when `request`'s response closes before it was completely sent. That is logged
 * once, at info: the request gets no access line (it was never answered) and reply-from's own
 * "response errored" would be a warning with a stack trace, for a cancellation made on purpose.
 */
export function abortedWhenUnfinished (request: FastifyRequest, response: ServerResponse): ClientSignal {
  const signal = new ClientSignal(request)
  response.once('close', () => {
    // An answer the upstream cut short was logged as that (proxy/index.ts), not as a hang-up.
    if (response.writableFinished || signal.upstreamFailed) return
    request.log.info({ method: request.method, path: request.url.split('?', 1)[0], status: response.headersSent ? response.statusCode : undefined },
      'connection closed before the answer was complete: upstream request cancelled')
    request.log = request.log.child({}, { level: 'error' })
    signal.abort(new ClientGoneError())
  })
  return signal
}

/**
 * reply-from builds the upstream request from a fixed set of fields, with no way to pass a signal,
 * but it copies the request headers with Object.assign, which keeps symbol keys; undici reads only
 * string keys. So the signal travels with the headers to UpstreamPool, under a symbol no client
 * header can spell.
 */
const CLIENT_SIGNAL = Symbol('authgate.clientSignal')

export function withClientSignal<H extends object> (headers: H, signal: ClientSignal | undefined): H {
  if (signal !== undefined) (headers as { [CLIENT_SIGNAL]?: ClientSignal })[CLIENT_SIGNAL] = signal
  return headers
}

function clientSignalOf (headers: unknown): ClientSignal | undefined {
  return typeof headers === 'object' && headers !== null ? (headers as { [CLIENT_SIGNAL]?: ClientSignal })[CLIENT_SIGNAL] : undefined
}

type Callback<T> = (err: Error | null, data: Dispatcher.ResponseData<T>) => void

export interface UpstreamPoolEvents {
  /**
   * A request found every connection busy and waits for one (`queued`: how many wait now). Called
   * for each such request, so throttle whatever it does.
   */
  queued?: (queued: number) => void
}

/**
 * The proxy's pool: a request that carries its client's signal is cancelled when that client
 * leaves, its failures are reported through that signal, and requests that must wait for a free
 * connection are told.
 */
export class UpstreamPool extends Pool {
  private readonly events: UpstreamPoolEvents

  constructor (origin: string, options?: Pool.Options, events: UpstreamPoolEvents = {}) {
    super(origin, options)
    this.events = events
  }

  override request<T = null> (options: Dispatcher.RequestOptions<T>, callback: Callback<T>): void
  override request<T = null> (options: Dispatcher.RequestOptions<T>): Promise<Dispatcher.ResponseData<T>>
  override request<T = null> (options: Dispatcher.RequestOptions<T>, callback?: Callback<T>): Promise<Dispatcher.ResponseData<T>> | void {
    const signal = clientSignalOf(options.headers)
    // reply-from builds these options afresh for each request: set, not copied (this is per request).
    if (signal !== undefined && options.signal == null) options.signal = signal
    if (callback === undefined) return super.request(options)
    if (signal === undefined) { super.request(options, callback); return }
    super.request(options, (err, data) => {
      if (err === null) callback(err, data)
      else signal.reportFailure(() => { callback(err, data) })
    })
  }

  override dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const free = super.dispatch(options, handler)
    // false: this request took the last free connection, or found none and waits in the pool's queue.
    if (!free && this.events.queued !== undefined) {
      const { queued } = this.stats
      if (queued > 0) this.events.queued(queued)
    }
    return free
  }
}
