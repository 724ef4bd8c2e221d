// Small HTTP helpers over undici for talking to the gateway like a browser without JavaScript.
import { request } from 'undici'

export interface Response { status: number, headers: Record<string, string | string[] | undefined>, body: string }

export async function http (url: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Response> {
  const res = await request(url, { method: (options.method ?? 'GET') as 'GET', headers: options.headers, body: options.body })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** name=value pairs from Set-Cookie headers (attributes dropped); empty values mean "cleared". */
export function setCookies (headers: Response['headers']): Record<string, string> {
  const raw = headers['set-cookie']
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  const out: Record<string, string> = {}
  for (const c of list) {
    const pair = c.split(';', 1)[0]!
    const eq = pair.indexOf('=')
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim()
  }
  return out
}

export function cookieHeader (cookies: Record<string, string>): string {
  return Object.entries(cookies).filter(([, v]) => v !== '').map(([k, v]) => `${k}=${v}`).join('; ')
}

export function csrfTokenFrom (html: string): string {
  const m = /name="csrf_token" value="([^"]+)"/.exec(html)
  if (m === null) throw new Error('no csrf_token in page')
  return m[1]!
}

/** Sign in through the real login form; returns the browser's cookies afterwards and the final response. */
export async function loginLocal (baseUrl: string, username: string, options: { password?: string, next?: string } = {}): Promise<{ cookies: Record<string, string>, response: Response }> {
  const page = await http(`${baseUrl}/login${options.next !== undefined ? '?next=' + encodeURIComponent(options.next) : ''}`)
  const cookies = setCookies(page.headers)
  const form = new URLSearchParams({ username, csrf_token: csrfTokenFrom(page.body), next: options.next ?? '/' })
  if (options.password !== undefined) form.set('password', options.password)
  const response = await http(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(cookies) },
    body: form.toString()
  })
  return { cookies: { ...cookies, ...setCookies(response.headers) }, response }
}

/** Send exact bytes (odd header spellings, duplicates) and read the whole response; the head must say Connection: close. */
export async function rawRequest (url: string, head: string): Promise<{ status: number, raw: string }> {
  const { connect } = await import('node:net')
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => { socket.write(head.replace(/\r?\n/g, '\r\n') + (head.endsWith('\n\n') ? '' : '\r\n\r\n')) })
    let raw = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { raw += chunk })
    socket.on('error', reject)
    socket.on('close', () => { resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0), raw }) })
  })
}
