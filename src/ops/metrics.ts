// Prometheus text-format counters, kept in memory. Few and coarse on purpose: enough to alert on
// failed sign-ins and upstream errors without a metrics dependency.

export class Counter {
  private readonly values = new Map<string, number>()

  constructor (readonly name: string, readonly help: string, readonly label: string) {}

  inc (labelValue: string, by = 1): void {
    this.values.set(labelValue, (this.values.get(labelValue) ?? 0) + by)
  }

  get (labelValue: string): number {
    return this.values.get(labelValue) ?? 0
  }

  render (): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`]
    for (const [value, count] of this.values) lines.push(`${this.name}{${this.label}="${value.replace(/["\\\n]/g, '_')}"} ${count}`)
    return lines.join('\n')
  }
}

export class Metrics {
  readonly requests = new Counter('authgate_proxy_requests_total', 'Requests for the upstream, by access decision.', 'decision')
  readonly upstreamErrors = new Counter('authgate_upstream_errors_total', 'Proxied requests that failed to reach the upstream.', 'kind')
  readonly logins = new Counter('authgate_logins_total', 'Successful sign-ins, by method.', 'method')
  readonly loginFailures = new Counter('authgate_login_failures_total', 'Refused sign-ins, by reason.', 'reason')
  readonly clientsRefused = new Counter('authgate_client_requests_refused_total', 'Requests refused for holding the upstream pool too long or too much, by reason.', 'reason')
  private readonly startedAt = Date.now()

  render (): string {
    return [
      this.requests.render(), this.upstreamErrors.render(), this.logins.render(), this.loginFailures.render(), this.clientsRefused.render(),
      '# HELP authgate_uptime_seconds Seconds since the process started.', '# TYPE authgate_uptime_seconds gauge',
      `authgate_uptime_seconds ${Math.floor((Date.now() - this.startedAt) / 1000)}`
    ].join('\n') + '\n'
  }
}
