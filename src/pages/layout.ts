import { html, type SafeHtml } from './html.js'

export const STYLESHEET_PATH = '/_authgate/static/authgate.css'

export interface PageOptions {
  title: string
  appName: string
  body: SafeHtml
}

export function page ({ title, appName, body }: PageOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${title} · ${appName}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main>
<div class="brand"><strong>${appName}</strong></div>
${body}
</main>
<footer>Protected by authgate</footer>
</body>
</html>
`.value
}

export interface MessagePageOptions {
  appName: string
  title: string
  message: string
  link?: { href: string, text: string }
}

/** The one look for error, logged-out and upstream-failure pages. */
export function messagePage ({ appName, title, message, link }: MessagePageOptions): string {
  return page({
    title,
    appName,
    body: html`<h1>${title}</h1>
<p role="alert">${message}</p>
${link !== undefined ? html`<p><a class="button" href="${link.href}">${link.text}</a></p>` : ''}`
  })
}
