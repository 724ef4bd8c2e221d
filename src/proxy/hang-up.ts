// The proxy's upstream connection pool, and what cancels a request on it. A client that hangs up
// before its answer has begun must not keep a pool connection: a request still waiting for the
// upstream's headers (a long-poll, a slow page) would otherwise hold its connection until the upstream
// answered (up to UPSTREAM_HEADER_TIMEOUT), while the client's per-address share was already released,
// and one anonymous client on a SKIP_AUTH_PATHS prefix could open and abandon requests until every
// pool connection was held. forward-http.ts aborts each proxied request whose response closes
// unfinished (the client left, or the gateway cut it off) with ClientGoneError, which frees (closes)
// its connection.
import { Pool, type Dispatcher } from 'undici'

/** Why an upstream request was cancelled: nobody is waiting for its answer any more. */
export class ClientGoneError extends Error {
  readonly code = 'AUTHGATE_CLIENT_GONE'
  constructor () {
    super('the client closed the connection before the answer was complete')
    this.name = 'ClientGoneError'
  }
}

export interface UpstreamPoolEvents {
  /**
   * A request found every connection busy and waits for one (`queued`: how many wait now). Called
   * for each such request, so throttle whatever it does.
   */
  queued?: (queued: number) => void
}

/** The proxy's pool: requests that must wait for a free connection are told. */
export class UpstreamPool extends Pool {
  private readonly events: UpstreamPoolEvents

  constructor (origin: string, options?: Pool.Options, events: UpstreamPoolEvents = {}) {
    super(origin, options)
    this.events = events
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
