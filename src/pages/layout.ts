// The one frame of every gateway page (login, errors, signed out, upstream failures) and of the demo
// upstream: a centred card with the operator's name and logo. One same-origin stylesheet; no scripts
// but the gateway's own files on the pages that offer passkeys (WebAuthn is a JavaScript API).
import { html, type SafeHtml } from './html.js'

export const STYLESHEET_PATH = '/_authgate/static/authgate.css'
/** The pages' icon (pages/static.ts serves it); linked, so browsers need not ask for /favicon.ico. */
export const ICON_PATH = '/_authgate/static/favicon.svg'

/** What the operator brands the pages with: APP_NAME and LOGO_URL / LOGO_FILE. */
export interface Brand {
  appName: string
  /** The logo's <img src>; none: the name alone. */
  logo?: string | undefined
}

export function brandOf (config: { appName: string, logo?: { src: string } | undefined }): Brand {
  return { appName: config.appName, logo: config.logo?.src }
}

/** The image origins the pages' CSP must allow besides their own: a LOGO_URL on another origin. */
export function logoImgSources (config: { logo?: { origin?: string } | undefined }): string[] {
  return config.logo?.origin !== undefined ? [config.logo.origin] : []
}

export interface PageOptions extends Brand {
  title: string
  body: SafeHtml
  /** A wider card, for pages with tables (the demo upstream). */
  wide?: boolean
  /** The gateway's own script files (passkeys), loaded deferred; the page must be served with allowOwnScripts. */
  scripts?: string[]
}

export function page ({ title, appName, logo, body, wide, scripts }: PageOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer">
<title>${title} · ${appName}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<link rel="icon" href="${ICON_PATH}" type="image/svg+xml">
${(scripts ?? []).map((src) => html`<script src="${src}" defer></script>
`)}</head>
<body>
<main class="card${wide === true ? ' wide' : ''}">
<header class="brand">${logo !== undefined ? html`<img src="${logo}" alt="" height="40">` : ''}<span class="app-name">${appName}</span></header>
${body}
</main>
<footer>Protected by authgate</footer>
</body>
</html>
`.value
}

/** An inline message: errors are announced at once (alert), notices politely (status). */
export function messageBox (tone: 'error' | 'info', text: string, id?: string): SafeHtml {
  return tone === 'error'
    ? html`<div class="alert" role="alert"${id !== undefined ? html` id="${id}"` : ''}><span class="visually-hidden">Error: </span>${text}</div>`
    : html`<div class="notice" role="status"${id !== undefined ? html` id="${id}"` : ''}>${text}</div>`
}

export interface MessagePageOptions extends Brand {
  title: string
  message: string
  /** error (default): something failed; info: a plain outcome such as "signed out". */
  tone?: 'error' | 'info'
  link?: { href: string, text: string }
}

/** The one look for error, logged-out and upstream-failure pages. */
export function messagePage ({ title, message, tone, link, ...brand }: MessagePageOptions): string {
  return page({
    ...brand,
    title,
    body: html`<h1>${title}</h1>
${messageBox(tone ?? 'error', message)}
${link !== undefined ? html`<p><a class="button" href="${link.href}">${link.text}</a></p>` : ''}`
  })
}
