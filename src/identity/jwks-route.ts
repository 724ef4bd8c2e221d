// GET /_authgate/jwks.json: the public keys that verify X-Identity-Assertion (current, then previous).
// Served only with IDENTITY_JWT=true; the document is built once, keys change only with a restart.
import type { FastifyPluginAsync } from 'fastify'
import type { IdentityJwtConfig } from '../config/index.js'
import { jwksDocument } from './jwt.js'

export const jwksRoute: FastifyPluginAsync<{ config: IdentityJwtConfig }> = async (app, { config }) => {
  const body = JSON.stringify(await jwksDocument(config.signingKey, config.previousKeys))
  app.get('/_authgate/jwks.json', async (_request, reply) =>
    // Short enough that a rotation is seen quickly; verifiers also refetch on an unknown kid.
    await reply.type('application/jwk-set+json').header('cache-control', 'public, max-age=300').send(body))
}
