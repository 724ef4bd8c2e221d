// /_authgate/static/: the pages' stylesheet and the operator's LOGO_FILE. Read once at startup, so a
// request never touches the file system and a file changed later cannot be served half-written.
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { LogoConfig } from '../config/index.js'

const stylesheet = readFileSync(new URL('./assets/authgate.css', import.meta.url))

// The paths never change with the content within one run; an hour keeps restarts after an update honest.
const CACHE = 'public, max-age=3600'

export async function staticRoutes (app: FastifyInstance, deps: { logo: LogoConfig | undefined }): Promise<void> {
  app.get('/_authgate/static/authgate.css', async (_request, reply) =>
    await reply.type('text/css; charset=utf-8').header('cache-control', CACHE).send(stylesheet))

  const file = deps.logo?.file
  if (file !== undefined) {
    const logo = readFileSync(file.path)
    app.get(deps.logo!.src, async (_request, reply) => {
      // An SVG opened on its own is a document: no scripts, no loads, in a sandbox.
      if (file.contentType === 'image/svg+xml') reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox")
      return await reply.type(file.contentType).header('cache-control', CACHE).send(logo)
    })
  }
}
