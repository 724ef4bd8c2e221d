// Guards the shared upstream connection pool against slow and greedy clients. Every proxied request
// holds one pool connection for as long as the client takes to send its body, so a client that sends
// one byte every few seconds, on enough requests at once, would hold every connection and stall every
// other user. Three bounds prevent that: request headers must arrive within a time limit (Node's
// headersTimeout), a request body may not pause too long or arrive too slowly (measured only while the
// gateway is actually waiting for the client, never while the upstream is slow to read), and one
// client address may hold only part of the pool at once. Responses are never timed: long-polling and
// streaming answers may take as long as the upstream needs.
import { Transform, type TransformCallback } from 'node:stream'
import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { messagePage, type Brand } from '../pages/layout.js'
import { setPageSecurityHeaders } from '../pages/security-headers.js'
import type { Counter } from '../ops/metrics.js'
import { isBrowserNavigation } from './access.js'
import { clientAddressKey } from '../net/client-address.js'

export interface ClientLimits {
  /** CLIENT_HEADER_TIMEOUT: the request line and headers must arrive within this (ms). */
  headerTimeoutMs: number
  /** CLIENT_BODY_IDLE_TIMEOUT: longest pause within a request body (ms); also the rate's window. */
  bodyIdleTimeoutMs: number
  /** CLIENT_BODY_MIN_RATE: bytes per second a body must average over each window (0: no rate check). */
  bodyMinBytesPerSecond: number
  /** CLIENT_MAX_CONCURRENT_REQUESTS: proxied requests one client (address, IPv6 /64) may have in progress. */
  maxConcurrentRequests: number
}

/** How many proxied requests each client has in progress; a request beyond the limit gets no slot. */
export class ClientSlots {
  private readonly inUse = new Map<string, number>()

  constructor (readonly limit: number) {}

  tryAcquire (key: string): boolean {
    const held = this.inUse.get(key) ?? 0
    if (held >= this.limit) return false
    this.inUse.set(key, held + 1)
    return true
  }

  release (key: string): void {
    const held = this.inUse.get(key) ?? 0
    if (held <= 1) this.inUse.delete(key)
    else this.inUse.set(key, held - 1)
  }

  held (key: string): number {
    return this.inUse.get(key) ?? 0
  }
}

export type BodyVerdict = 'idle' | 'too-slow'

/**
 * The pace of one request body, judged on the time the gateway spent waiting for the client: no byte
 * for `idleMs` is `idle`; fewer than `minBytesPerSecond` on average over a window of `idleMs` is
 * `too-slow` (the first window is the grace period: a small body that completes within it always
 * passes). Time is passed in, so the decision is a plain function of what happened when.
 */
export class BodyPace {
  private lastByteAt: number
  private windowStart: number
  private windowBytes = 0

  constructor (private readonly limits: { idleMs: number, minBytesPerSecond: number }, now: number) {
    this.lastByteAt = now
    this.windowStart = now
  }

  received (bytes: number, now: number): void {
    this.windowBytes += bytes
    this.lastByteAt = now
  }

  /** The gateway stopped reading (the upstream reads slower than the client sends): not the client's time. */
  heldBack (now: number): void {
    this.lastByteAt = now
    this.windowStart = now
    this.windowBytes = 0
  }

  verdict (now: number): BodyVerdict | undefined {
    if (now - this.lastByteAt >= this.limits.idleMs) return 'idle'
    const elapsed = now - this.windowStart
    if (this.limits.minBytesPerSecond > 0 && elapsed >= this.limits.idleMs) {
      if (this.windowBytes * 1000 < this.limits.minBytesPerSecond * elapsed) return 'too-slow'
      this.windowStart = now
      this.windowBytes = 0
    }
    return undefined
  }
}

/** Passes a request body through unchanged while a BodyPace watches it; calls `onVerdict` once if it fails. */
class BodyWatchdog extends Transform {
  readonly pace: BodyPace
  bytes = 0
  private readonly timer: NodeJS.Timeout

  constructor (limits: ClientLimits, onVerdict: (verdict: BodyVerdict) => void) {
    super()
    this.pace = new BodyPace({ idleMs: limits.bodyIdleTimeoutMs, minBytesPerSecond: limits.bodyMinBytesPerSecond }, Date.now())
    // A few looks per idle period: a verdict comes at most a quarter period late (and never early).
    this.timer = setInterval(() => {
      const now = Date.now()
      // Our buffers are full, so the client is paused by us: the upstream is the slow one.
      if (this.writableNeedDrain || this.readableLength >= this.readableHighWaterMark) {
        this.pace.heldBack(now)
        return
      }
      const verdict = this.pace.verdict(now)
      if (verdict !== undefined) {
        this.stop()
        onVerdict(verdict)
      }
    }, Math.min(1000, Math.max(50, limits.bodyIdleTimeoutMs / 4)))
    this.timer.unref()
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    this.pace.received(chunk.length, Date.now())
    callback(null, chunk)
  }

  override _flush (callback: TransformCallback): void {
    this.stop()
    callback()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    this.stop()
    callback(error)
  }

  stop (): void {
    clearInterval(this.timer)
  }
}

/** The error a too-slow body is ended with: the upstream request aborts, and the proxy's onError knows why. */
export class ClientTooSlowError extends Error {
  readonly code = 'AUTHGATE_CLIENT_TOO_SLOW'
  constructor (readonly verdict: BodyVerdict) {
    super(verdict === 'idle' ? 'the client stopped sending its request body' : 'the client sent its request body too slowly')
    this.name = 'ClientTooSlowError'
  }
}

const RETRY_AFTER_SECONDS = 2

export interface ClientLimitsDeps {
  limits: ClientLimits
  brand: Brand
  imgSources?: string[]
  /** Counts refused requests by reason (too_many, body_idle, body_too_slow). */
  refused: Counter
}

/**
 * Installs the per-client slot and the body watchdog on the proxy's routes. Returns what the proxy's
 * upstream-error handler asks: was this request ended here, for being too slow (already answered)?
 */
export function limitClients (app: FastifyInstance, deps: ClientLimitsDeps): { endedForSlowness: (request: object) => boolean } {
  const { limits } = deps
  const slots = new ClientSlots(limits.maxConcurrentRequests)
  const endedForSlowness = new WeakSet<object>()

  function refuse (request: FastifyRequest, reply: FastifyReply, status: 408 | 429, title: string, message: string): void {
    request.accessDecision = 'client-limit'
    // The rest of the request is never read: the connection cannot carry another one.
    void reply.code(status).header('connection', 'close').header('cache-control', 'no-store')
    if (status === 429) void reply.header('retry-after', String(RETRY_AFTER_SECONDS))
    // Any request from a page (a navigation or a form post) gets a page; API clients get JSON.
    if (request.headers.accept?.includes('text/html') === true) {
      setPageSecurityHeaders(reply, [], deps.imgSources)
      const link = isBrowserNavigation(request.method, request.headers.accept) ? { href: request.url, text: 'Try again' } : { href: '/', text: 'Back' }
      void reply.type('text/html; charset=utf-8').send(messagePage({ ...deps.brand, title, message, link }))
    } else {
      void reply.send({ error: status === 429 ? 'too_many_requests' : 'request_timeout', message })
    }
  }

  // Callback-style hooks: they run on every proxied request, and async ones cost a promise each.
  app.addHook('onRequest', (request, reply, done) => {
    // WebSockets do not use the pool (they get their own upstream connection). Node sets `upgrade`
    // only on requests it handed to the 'upgrade' event, not on any request with an Upgrade header.
    if ((request.raw as { upgrade?: boolean }).upgrade === true) { done(); return }
    const key = clientAddressKey(request.ip)
    if (!slots.tryAcquire(key)) {
      deps.refused.inc('too_many')
      // Answered here: the request goes no further (done is not called).
      refuse(request, reply, 429, 'Too many requests at once',
        `Too many requests from your address are in progress at once (at most ${slots.limit}). Try again in a moment.`)
      return
    }
    // 'close' follows every end: answered, aborted by the client, or failed.
    reply.raw.once('close', () => { slots.release(key) })
    done()
  })

  app.addHook('preParsing', (request, reply, payload, done) => {
    if (!hasBody(request)) { done(null, payload); return }
    const watchdog = new BodyWatchdog(limits, (verdict) => {
      endedForSlowness.add(request)
      deps.refused.inc(verdict === 'idle' ? 'body_idle' : 'body_too_slow')
      request.log.info({ method: request.method, path: request.url.split('?', 1)[0], status: reply.sent ? reply.statusCode : 408, ip: request.ip, reason: verdict, bytes: watchdog.bytes },
        'client sent its request body too slowly: upstream request aborted')
      // That line is this request's only one: the access line would repeat it, and the proxy's
      // "response errored" would too, as a warning with a stack trace, for an abort made on purpose.
      request.log = request.log.child({}, { level: 'error' })
      payload.unpipe(watchdog)
      payload.pause()
      if (!reply.sent) {
        refuse(request, reply, 408, 'The upload was too slow',
          verdict === 'idle' ? 'Your browser stopped sending the request. Check your connection and try again.' : 'The request arrived too slowly. Check your connection and try again.')
      }
      // Ends the body the upstream is reading: undici aborts that request and frees its connection.
      watchdog.destroy(new ClientTooSlowError(verdict))
    })
    // A client that hangs up ends the upstream request too (as the raw request did before).
    payload.once('error', (err) => { watchdog.destroy(err) })
    payload.once('close', () => { if (!request.raw.complete) watchdog.destroy(new Error('the client closed the connection during the request body')) })
    // Answered before the body was read (a refusal, or an upstream that answered early): stop
    // watching, and let Node discard the rest of the body as it would have (so a keep-alive
    // connection can carry the next request).
    reply.raw.once('close', () => {
      if (!watchdog.writableFinished) {
        payload.unpipe(watchdog)
        watchdog.destroy()
        payload.resume()
      }
    })
    payload.pipe(watchdog)
    done(null, watchdog)
  })

  return { endedForSlowness: (request) => endedForSlowness.has(request) }
}

/** What Fastify parses a body for (its handle-request rules): GET/HEAD never, others when one is announced. */
function hasBody (request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false
  const { headers } = request.raw
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

/** Fastify server options: Node answers 408 and closes a connection whose request headers are late. */
export function headerTimeoutServerOptions (limits: ClientLimits): { http: { headersTimeout: number, requestTimeout: number, connectionsCheckingInterval: number } } {
  return {
    http: {
      headersTimeout: limits.headerTimeoutMs,
      // No limit on a whole request: a large upload on a slow link may take long (the body limits apply).
      requestTimeout: 0,
      // How often Node looks for late headers (its default, 30 s, would double a short limit).
      connectionsCheckingInterval: Math.min(1000, Math.max(100, limits.headerTimeoutMs / 4))
    }
  }
}

/** One info line per connection whose headers came too late (Fastify itself logs these at trace only). */
export function logHeaderTimeouts (server: Server, log: FastifyBaseLogger, refused: Counter): void {
  server.prependListener('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { remoteAddress?: string }) => {
    if (err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') return
    refused.inc('headers_too_slow')
    log.info({ ip: socket.remoteAddress }, 'client sent its request headers too slowly: 408, connection closed')
  })
}
