// TimeTracker's pages in a Chromium that has no internet. Its templates load Bootstrap, jQuery,
// Chart.js, Font Awesome, DataTables, Google Fonts and the Socket.IO client from public CDNs; the
// test machines reach none of them. Every request to another host than loopback is answered here:
// the libraries TimeTracker needs from Debian's packaged copies (and socket.io-client from
// node_modules), everything else with an empty body of the right type, recorded so that a test can
// show what the pages asked the internet for.
import { existsSync, readFileSync } from 'node:fs'
import { extname } from 'node:path'
import type { BrowserContext, Page, Route } from 'playwright-core'

const NODE_MODULES = new URL('../../node_modules/', import.meta.url).pathname
const FONT_AWESOME = '/usr/share/fonts-font-awesome'

interface LocalAsset {
  /** What it replaces: host and path, matched against the request's. */
  host: string
  path: RegExp
  /** Its content, concatenated. */
  files: string[]
  type: string
  /** Appended to the file's content. */
  extra?: string
}

// Font Awesome 4.7 (Debian's) stands in for TimeTracker's 6.4: its `fa-*` names that exist in 4.7
// show, under the newer style classes too; the others stay blank.
const FONT_AWESOME_STYLE_CLASSES = '\n.fas,.far,.fab,.fa-solid,.fa-regular,.fa-brands{display:inline-block;font:normal normal normal 14px/1 FontAwesome;font-size:inherit;text-rendering:auto;-webkit-font-smoothing:antialiased}\n'

/** The CDN files TimeTracker's templates use, and the packaged files that stand in for each. */
export const LOCAL_ASSETS: LocalAsset[] = [
  { host: 'cdn.jsdelivr.net', path: /^\/npm\/bootstrap@5[^/]*\/dist\/css\/bootstrap\.min\.css$/, files: ['/usr/share/javascript/bootstrap5/css/bootstrap.min.css'], type: 'text/css' },
  // Debian's "bundle" leaves Popper out (it wants a global `Popper`): prepend Debian's Popper 2, or
  // no dropdown opens (TimeTracker's user menu, with its Logout link, is one).
  { host: 'cdn.jsdelivr.net', path: /^\/npm\/bootstrap@5[^/]*\/dist\/js\/bootstrap\.bundle\.min\.js$/, files: ['/usr/share/javascript/popperjs2/popper.min.js', '/usr/share/javascript/bootstrap5/js/bootstrap.bundle.min.js'], type: 'text/javascript' },
  // Debian has Chart.js 3.9 (UMD, the same `Chart` global as 4.4's chart.umd.js).
  { host: 'cdn.jsdelivr.net', path: /^\/npm\/chart\.js@[^/]*\/dist\/chart\.umd(\.min)?\.js$/, files: ['/usr/share/javascript/chart.js/chart.min.js'], type: 'text/javascript' },
  { host: 'code.jquery.com', path: /^\/jquery-3\.[\d.]+(\.min)?\.js$/, files: ['/usr/share/javascript/jquery/jquery.min.js'], type: 'text/javascript' },
  { host: 'cdnjs.cloudflare.com', path: /^\/ajax\/libs\/font-awesome\/[^/]+\/css\/(all|font-awesome)(\.min)?\.css$/, files: [`${FONT_AWESOME}/css/font-awesome.min.css`], type: 'text/css', extra: FONT_AWESOME_STYLE_CLASSES },
  // 4.7's stylesheet asks for ../fonts/fontawesome-webfont.<ext>, relative to where it was served.
  ...['woff2', 'woff', 'ttf'].map((ext) => ({ host: 'cdnjs.cloudflare.com', path: new RegExp(`^/ajax/libs/font-awesome/[^/]+/fonts/fontawesome-webfont\\.${ext}$`), files: [`${FONT_AWESOME}/fonts/fontawesome-webfont.${ext}`], type: `font/${ext}` })),
  { host: 'cdnjs.cloudflare.com', path: /^\/ajax\/libs\/socket\.io\/4\.[^/]+\/socket\.io(\.min)?\.js$/, files: [`${NODE_MODULES}socket.io-client/dist/socket.io.min.js`], type: 'text/javascript' }
]

/** Packaged files the stand-ins need that this machine lacks (empty: all there). */
export function missingLocalAssets (): string[] {
  return [...new Set(LOCAL_ASSETS.flatMap((a) => a.files))].filter((file) => !existsSync(file))
}

/** The Debian packages that hold LOCAL_ASSETS (socket.io-client is a devDependency). */
export const LOCAL_ASSET_PACKAGES = 'libjs-bootstrap5 node-popper2 libjs-jquery libjs-chart.js fonts-font-awesome'

export interface OfflineCdn {
  /** External URLs answered from a local copy. */
  served: string[]
  /** External URLs answered with an empty body: what the pages wanted from the internet and did without. */
  emptied: string[]
  /** Uncaught JavaScript errors of the pages (a missing or incompatible stand-in shows here). */
  pageErrors: string[]
}

const EMPTY_TYPES: Record<string, string> = {
  stylesheet: 'text/css',
  script: 'text/javascript',
  font: 'font/woff2',
  image: 'image/gif',
  document: 'text/html',
  fetch: 'application/json',
  xhr: 'application/json'
}

const BY_EXTENSION: Record<string, string> = { '.css': 'text/css', '.js': 'text/javascript', '.woff2': 'font/woff2', '.woff': 'font/woff', '.ttf': 'font/ttf', '.svg': 'image/svg+xml', '.png': 'image/png' }

function isLoopback (url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]'
}

/**
 * Answer every non-loopback request made in `target` (a whole context, or one page) locally.
 * Loopback requests (the gateway, the IdP, TimeTracker) are not touched.
 */
export async function serveCdnLocally (target: BrowserContext | Page): Promise<OfflineCdn> {
  const missing = missingLocalAssets()
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')} (apt-get install ${LOCAL_ASSET_PACKAGES}; npm install)`)
  const bodies = new Map<string, Buffer>()
  const record: OfflineCdn = { served: [], emptied: [], pageErrors: [] }
  const context = 'pages' in target ? target : target.context()
  context.on('weberror', (error) => { record.pageErrors.push(error.error().message) })
  const external = (url: URL): boolean => (url.protocol === 'http:' || url.protocol === 'https:') && !isLoopback(url)
  await target.route(external, async (route: Route) => {
    const request = route.request()
    const url = new URL(request.url())
    const asset = LOCAL_ASSETS.find((a) => a.host === url.hostname && a.path.test(url.pathname))
    if (asset !== undefined) {
      const key = asset.files.join(' ')
      let body = bodies.get(key)
      if (body === undefined) {
        body = Buffer.concat([...asset.files.map((f) => Buffer.concat([readFileSync(f), Buffer.from('\n')])), Buffer.from(asset.extra ?? '')])
        bodies.set(key, body)
      }
      record.served.push(url.href)
      await route.fulfill({ status: 200, contentType: asset.type, body, headers: { 'access-control-allow-origin': '*' } })
      return
    }
    record.emptied.push(url.href)
    const type = BY_EXTENSION[extname(url.pathname)] ?? EMPTY_TYPES[request.resourceType()] ?? 'text/plain'
    await route.fulfill({ status: 200, contentType: type, body: '' })
  })
  return record
}

/** The hosts of `urls`, each once, for a readable summary. */
export function hostsOf (urls: string[]): string[] {
  return [...new Set(urls.map((u) => new URL(u).host))].sort()
}

export interface SocketIoTraffic {
  /** Every HTTP request of the page's Socket.IO client (handshake and long-polls). */
  requests: string[]
  /** Every WebSocket the page opened. */
  websockets: string[]
  /** The names of the Socket.IO events the page received, over either transport, in order. */
  events: string[]
}

/**
 * What `page`'s Socket.IO client sent where and which events reached it, seen from outside the
 * page (no hook in TimeTracker's own script): requests under /socket.io/, WebSocket frames and
 * long-poll answers. Call before the page navigates.
 */
export function watchSocketIo (page: Page): SocketIoTraffic {
  const traffic: SocketIoTraffic = { requests: [], websockets: [], events: [] }
  const isSocketIo = (url: string): boolean => new URL(url).pathname.startsWith('/socket.io/')
  const record = (payload: string): void => {
    // Engine.IO packets, several per long-poll answer (separated by U+001E); Socket.IO events are
    // "4" (message) "2" (event), an optional ack id, then ["name", ...args].
    for (const packet of payload.split('\x1e')) {
      const m = /^42\d*(\[.*)$/s.exec(packet)
      if (m === null) continue
      try {
        const [name] = JSON.parse(m[1]!) as unknown[]
        if (typeof name === 'string') traffic.events.push(name)
      } catch {}
    }
  }
  page.on('request', (request) => { if (isSocketIo(request.url())) traffic.requests.push(request.url()) })
  page.on('response', (response) => {
    const request = response.request()
    if (!isSocketIo(response.url()) || request.method() !== 'GET') return
    response.text().then(record, () => {})
  })
  page.on('websocket', (ws) => {
    traffic.websockets.push(ws.url())
    ws.on('framereceived', (frame) => { if (typeof frame.payload === 'string') record(frame.payload) })
  })
  return traffic
}
