// /_authgate/static/: the pages' stylesheet, their icon, the passkey scripts (@simplewebauthn/browser's
// bundle, from the installed package, and ours) and the operator's LOGO_FILE. Read once at startup, so a request never touches the file system and a file changed later cannot be served
// half-written.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import type { FastifyReply, FastifyPluginAsync } from 'fastify'
import type { LogoConfig } from '../config/index.js'
import { ICON_PATH } from './layout.js'

/** The passkey pages' scripts: the WebAuthn library (it defines SimpleWebAuthnBrowser), then ours. */
export const WEBAUTHN_SCRIPT_PATH = '/_authgate/static/webauthn.js'
export const PASSKEYS_SCRIPT_PATH = '/_authgate/static/passkeys.js'
export const PASSKEY_SCRIPTS = [WEBAUTHN_SCRIPT_PATH, PASSKEYS_SCRIPT_PATH]

const stylesheet = readFileSync(new URL('./assets/authgate.css', import.meta.url))
const icon = readFileSync(new URL('./assets/favicon.svg', import.meta.url))
const passkeysScript = readFileSync(new URL('./assets/passkeys.js', import.meta.url))
// The package's browser bundle as installed (no CDN, no copy to keep in step): its entry point
// is script/index.js, the bundle sits beside it in dist/bundle/.
const webauthnScript = readFileSync(new URL('../dist/bundle/index.umd.min.js', pathToFileURL(createRequire(import.meta.url).resolve('@simplewebauthn/browser'))))

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
  app.get(WEBAUTHN_SCRIPT_PATH, async (_request, reply) =>
    await reply.type('text/javascript; charset=utf-8').header('cache-control', CACHE).send(webauthnScript))
  app.get(PASSKEYS_SCRIPT_PATH, async (_request, reply) =>
    await reply.type('text/javascript; charset=utf-8').header('cache-control', CACHE).send(passkeysScript))
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
