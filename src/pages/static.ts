// /_authgate/static/: the pages' stylesheet, their icon and the operator's LOGO_FILE. Read once at
// startup, so a request never touches the file system and a file changed later cannot be served
// half-written.
import { readFileSync } from 'node:fs'
import type { FastifyReply, FastifyPluginAsync } from 'fastify'
import type { LogoConfig } from '../config/index.js'
import { ICON_PATH } from './layout.js'

const stylesheet = readFileSync(new URL('./assets/authgate.css', import.meta.url))
const icon = readFileSync(new URL('./assets/favicon.svg', import.meta.url))

// The paths never change with the content within one run; an hour keeps restarts after an update honest.
const CACHE = 'public, max-age=3600'
// An SVG opened on its own is a document: no scripts, no loads, in a sandbox.
const SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

/**
 * The answer to a browser's own `/favicon.ico` request made without a session (instead of a 401 on
 * every gateway page). The same URL is the application's icon once signed in, so it is revalidated
 * every time rather than cached across the sign-in.
 */
export async function sendGatewayIcon (reply: FastifyReply): Promise<FastifyReply> {
  return await reply.type('image/svg+xml').headers({ 'cache-control': 'no-cache', vary: 'cookie', 'content-security-policy': SVG_POLICY, 'x-content-type-options': 'nosniff' }).send(icon)
}

export const staticRoutes: FastifyPluginAsync<{ logo: LogoConfig | undefined }> = async (app, deps) => {
  app.get('/_authgate/static/authgate.css', async (_request, reply) =>
    await reply.type('text/css; charset=utf-8').header('cache-control', CACHE).send(stylesheet))
  app.get(ICON_PATH, async (_request, reply) =>
    await reply.type('image/svg+xml').headers({ 'cache-control': CACHE, 'content-security-policy': SVG_POLICY }).send(icon))

  const file = deps.logo?.file
  if (file !== undefined) {
    const logo = readFileSync(file.path)
    app.get(deps.logo!.src, async (_request, reply) => {
      if (file.contentType === 'image/svg+xml') reply.header('content-security-policy', SVG_POLICY)
      return await reply.type(file.contentType).header('cache-control', CACHE).send(logo)
    })
  }
}
