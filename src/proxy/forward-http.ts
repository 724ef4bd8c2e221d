// Proxied HTTP requests, straight on undici's dispatch. @fastify/http-proxy still routes every
// request (and owns WebSockets), but its HTTP path, @fastify/reply-from, cost more CPU per request
// than the rest of the gateway together: an upstream response stream (undici's Readable) piped into
// Fastify's stream sending, each request's headers copied four times, retry and logging closures.
// Here one object per request is the undici handler: it writes the upstream's status and headers
// (rewritten by forwarding.ts) and then its body chunks to the client's response as they come, with
// backpressure both ways; the request body is undici's to stream (no buffering either way).
//
// Besides the answer itself it does what the proxy needs of a request in flight:
// - a client that leaves before its answer is complete cancels the upstream request (its pool
//   connection is freed): one info line, no access line (see `clientLeft`);
// - a failure before the upstream's headers (refused, reset, header timeout) goes to `failed`, which
//   answers 502/504; a body the upstream cuts short is logged once and the client's response is cut
//   short too (it must not look complete);
// - Fastify's onSend hooks do not run for an answer written here. On these routes they are
//   @fastify/cookie's (nothing on the proxied path sets a cookie) and @fastify/secure-session's, which
//   re-issues a cookie decrypted with a previous SECRET_KEY: such an answer is sent through
//   `reply.send` instead, so the cookie is renewed as before.
import { PassThrough, type Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { HeaderMap } from '../identity/headers.js'
import { ClientGoneError } from './hang-up.js'

export interface HttpForwarderHooks {
  /** The upstream failed before its answer began (no connection, reset, no headers in time): answer the client. */
  failed: (request: FastifyRequest, reply: FastifyReply, error: Error) => void
  /** The upstream's answer broke off after it had begun: the client's response is cut short (already done here). */
  cutShort: (request: FastifyRequest, status: number, error: Error) => void
  /** The client left (or its response was cut off) before its answer was complete: the upstream request is cancelled. */
  clientLeft: (request: FastifyRequest, reply: FastifyReply) => void
}

/** The response headers for the client, from the upstream's (@fastify/http-proxy's rewriting, see index.ts). */
export type ResponseHeaders = (headers: HeaderMap, request: FastifyRequest) => HeaderMap

/** Whether the reply has something for Fastify's onSend hooks to do (see the top of this file). */
function needsOnSendHooks (request: FastifyRequest): boolean {
  return (request as { session?: { changed?: boolean } | null }).session?.changed === true
}

/** reply-from's refusal for a destination that decodes to a parent segment: 400 through the error handler. */
function invalidDestination (): Error {
  return Object.assign(new Error('source/request contain invalid characters'), { statusCode: 400 })
}

/**
 * The path the upstream receives: `dest` (@fastify/http-proxy's destination, UPSTREAM_URL's path
 * prefix included, already validated by it) and the request's query string as it came. A `dest` that
 * decodes to a `..` segment anywhere is refused (400), as reply-from refused it.
 */
export function upstreamPath (dest: string, requestUrl: string): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(dest)
  } catch {
    throw invalidDestination()
  }
  if (decoded === '..' || decoded.includes('/..') || decoded.includes('../')) throw invalidDestination()
  const q = requestUrl.indexOf('?')
  return q > 0 ? dest + requestUrl.slice(q) : dest
}

/** One proxied request: undici's handler for it, and the client's response it writes to. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  /** The client's response is gone (closed unfinished): nothing more is written, the upstream request is cancelled. */
  private gone = false
  /** The upstream's answer began (its headers are written, or handed to reply.send). */
  private answering = false
  /** The upstream failed (and that was logged): the response closing unfinished is then no client hang-up. */
  private upstreamFailed = false
  private status = 0
  /** Set when the answer goes through reply.send: the body's chunks go there. */
  private body: PassThrough | undefined
  private readonly res: ServerResponse
  private readonly onClose = (): void => { this.closed() }
  private onDrain: (() => void) | undefined

  constructor (private readonly hooks: HttpForwarderHooks, private readonly responseHeaders: ResponseHeaders, private readonly request: FastifyRequest, private readonly reply: FastifyReply) {
    this.res = reply.raw
    this.res.once('close', this.onClose)
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.gone) controller.abort(new ClientGoneError())
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // Informational answers (102, 103) are not passed on (100 never comes: Expect is answered here).
    if (statusCode < 200) return
    const { reply, request, res } = this
    // Answered meanwhile (a body too slow was refused with 408) or left: nobody waits for this answer.
    if (this.gone || reply.sent || res.headersSent) {
      controller.abort(new ClientGoneError())
      return
    }
    this.answering = true
    this.status = statusCode
    // Fastify refuses such a status (Node would send it): a broken answer, as reply-from treated it.
    if (statusCode > 599) {
      controller.abort(Object.assign(new Error(`the upstream answered with status ${statusCode}`), { code: 'AUTHGATE_BAD_STATUS' }))
      this.answering = false
      return
    }
    const out = this.responseHeaders(headers, request)
    // An HTTP/1 connection cannot carry another request until this one's body has been read.
    if (!request.raw.complete) out.connection = 'close'
    if (needsOnSendHooks(request)) {
      this.body = new PassThrough()
      this.body.on('drain', () => { controller.resume() })
      void reply.code(statusCode).headers(out).send(this.body)
      return
    }
    // What Fastify would have sent along: the headers set on the reply before (X-Request-Id).
    const own = reply.getHeaders()
    for (const name in own) if (!(name in out)) out[name] = own[name] as string | string[]
    res.writeHead(statusCode, out as Record<string, string | string[]>)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.gone) return
    const target = this.body ?? this.res
    if (target.write(chunk)) return
    // The client reads slower than the upstream sends: stop reading the upstream until it catches up.
    controller.pause()
    if (this.body === undefined) {
      this.onDrain ??= () => { controller.resume() }
      this.res.once('drain', this.onDrain)
    }
  }

  onResponseEnd (): void {
    this.res.removeListener('close', this.onClose)
    if (this.gone) return
    if (this.body !== undefined) this.body.end()
    else this.res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    // Cancelled on purpose: the client left, or its body was too slow (client-limits answered it).
    if (this.gone || error instanceof ClientGoneError) return
    this.upstreamFailed = true
    if (!this.answering) {
      this.res.removeListener('close', this.onClose)
      this.hooks.failed(this.request, this.reply, error)
      return
    }
    this.hooks.cutShort(this.request, this.status, error)
    // Half an answer must not look complete: the client sees its connection closed.
    if (this.body !== undefined) this.body.destroy(error)
    this.res.destroy()
  }

  /** The client's response closed: finished, or cut off before its end (the client left, a session ended, shutdown). */
  private closed (): void {
    if (this.res.writableFinished || this.upstreamFailed) return
    this.gone = true
    this.hooks.clientLeft(this.request, this.reply)
    this.controller?.abort(new ClientGoneError())
  }
}

/** Sends proxied HTTP requests to the upstream pool and their answers back (see the top of this file). */
export class HttpForwarder {
  private readonly host: string

  constructor (private readonly pool: Dispatcher, upstream: URL, private readonly hooks: HttpForwarderHooks) {
    this.host = upstream.host
  }

  /** `headers`: the upstream request's (forwarding.ts); Host is set here to the upstream's. */
  forward (request: FastifyRequest, reply: FastifyReply, path: string, headers: HeaderMap, responseHeaders: ResponseHeaders): void {
    headers.host = this.host
    const body = request.body as Readable | undefined
    this.pool.dispatch({ path, method: request.method as Dispatcher.HttpMethod, headers: headers as Record<string, string>, body: body ?? null }, new Exchange(this.hooks, responseHeaders, request, reply))
  }
}
