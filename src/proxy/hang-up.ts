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
import type { FastifyRequest } from 'fastify'
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

  abort (reason: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.emit('abort')
  }
}

/**
 * A signal that aborts when `request`'s response closes before it was completely sent. That is logged
 * once, at info: the request gets no access line (it was never answered) and reply-from's own
 * "response errored" would be a warning with a stack trace, for a cancellation made on purpose.
 */
export function abortedWhenUnfinished (request: FastifyRequest, response: ServerResponse): ClientSignal {
  const signal = new ClientSignal()
  response.once('close', () => {
    if (response.writableFinished) return
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

/** The proxy's pool: a request that carries its client's signal is cancelled when that client leaves. */
export class UpstreamPool extends Pool {
  override request<T = null> (options: Dispatcher.RequestOptions<T>, callback: Callback<T>): void
  override request<T = null> (options: Dispatcher.RequestOptions<T>): Promise<Dispatcher.ResponseData<T>>
  override request<T = null> (options: Dispatcher.RequestOptions<T>, callback?: Callback<T>): Promise<Dispatcher.ResponseData<T>> | void {
    const signal = clientSignalOf(options.headers)
    // reply-from builds these options afresh for each request: set, not copied (this is per request).
    if (signal !== undefined && options.signal == null) options.signal = signal
    return callback === undefined ? super.request(options) : super.request(options, callback)
  }
}
