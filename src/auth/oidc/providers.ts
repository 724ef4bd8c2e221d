// The SSO providers of this deployment, each with its own relying party (client.ts, discovered in
// the background on its own) and its own re-validation of the sessions it opened. Everything that
// depends on "which IdP" asks here: the flow's provider at the callback, the session's at logout and
// re-validation, the logout token's by its `iss`. One provider down leaves the others working.
import type { FastifyBaseLogger } from 'fastify'
import type { OidcConfig } from '../../config/index.js'
import type { SessionPayload } from '../../session/session.js'
import { OidcClient } from './client.js'
import type { IdpEndpoint, IdpOutcome } from '../../ops/metrics.js'
import type { SessionRevalidator } from './revalidation.js'

export interface OidcProvider {
  config: OidcConfig
  client: OidcClient
}

export interface ProvidersOptions {
  log: FastifyBaseLogger
  /** Told of every request to an IdP; `provider` is its id when OIDC_PROVIDERS names them. */
  observe?: (endpoint: IdpEndpoint, outcome: IdpOutcome, seconds: number, provider: string | undefined) => void
  /** The re-validation of one provider's sessions; undefined when its OIDC_REFRESH_INTERVAL is 0. */
  revalidatorFor?: (provider: OidcProvider) => SessionRevalidator | undefined
}

export class OidcProviders {
  /** In OIDC_PROVIDERS order: the first is the default (no `provider` in /login/oidc). */
  readonly list: readonly OidcProvider[]
  private readonly byIdMap: ReadonlyMap<string, OidcProvider>
  private readonly revalidators = new Map<string, SessionRevalidator>()

  /**
   * @param named OIDC_PROVIDERS is set: sessions and flows record their provider's id. Otherwise
   *   there is one provider and nothing records it (cookies stay as they were before several).
   */
  constructor (configs: readonly OidcConfig[], readonly named: boolean, options: ProvidersOptions) {
    const { observe } = options
    this.list = configs.map((config) => {
      const provider = named ? config.id : undefined
      const log = named ? options.log.child({ provider: config.id }) : options.log
      return { config, client: new OidcClient({ config, log, ...(observe !== undefined ? { observe: (endpoint, outcome, seconds) => { observe(endpoint, outcome, seconds, provider) } } : {}) }) }
    })
    this.byIdMap = new Map(this.list.map((p) => [p.config.id, p]))
    for (const provider of this.list) {
      const revalidator = options.revalidatorFor?.(provider)
      if (revalidator !== undefined) this.revalidators.set(provider.config.id, revalidator)
    }
  }

  get first (): OidcProvider | undefined {
    return this.list[0]
  }

  byId (id: string): OidcProvider | undefined {
    return this.byIdMap.get(id)
  }

  /** The provider whose discovered issuer is exactly `issuer` (the `iss` its tokens carry). */
  byIssuer (issuer: string): OidcProvider | undefined {
    return this.list.find((p) => p.client.issuer === issuer)
  }

  /**
   * The provider that opened an SSO session: the one its cookie names; a cookie that names none
   * comes from before OIDC_PROVIDERS was set, when the first provider was the only one.
   */
  forSession (session: Pick<SessionPayload, 'm' | 'p'>): OidcProvider | undefined {
    if (session.m !== 'oidc') return undefined
    return session.p !== undefined ? this.byId(session.p) : this.first
  }

  /** A request of this session is let through: its provider re-validates it when due (revalidation.ts). */
  touch (session: SessionPayload): void {
    const provider = this.forSession(session)
    if (provider !== undefined) this.revalidators.get(provider.config.id)?.touch(session)
  }

  start (): void {
    for (const { client } of this.list) client.start()
  }

  stop (): void {
    for (const { client } of this.list) client.stop()
  }

  /** Every re-validation under way has finished (for shutdown and tests). */
  async idle (): Promise<void> {
    await Promise.all([...this.revalidators.values()].map(async (r) => { await r.idle() }))
  }

  /**
   * One readiness check per provider. With AUTH_METHOD=oidc nobody signs in without an IdP: a
   * single provider is required; of several, any one ready is enough (the `oidc` check says so).
   */
  readinessChecks (ssoOnly: boolean): Array<{ name: string, required: boolean, check: () => Promise<string | undefined> }> {
    const checks = this.list.map(({ config, client }) => ({
      name: config.readinessName,
      required: ssoOnly && !this.named,
      check: async () => client.problem()
    }))
    if (!this.named) return checks
    return [...checks, {
      name: 'oidc',
      required: ssoOnly,
      check: async () => this.list.some(({ client }) => client.ready) ? undefined : 'no SSO provider is discovered yet'
    }]
  }
}
