// Server-side HTML with escaping by default: every interpolated value is escaped unless it is
// itself the output of `html` (a SafeHtml). No template engine, no inline script or style.

export class SafeHtml {
  constructor (readonly value: string) {}
  toString (): string { return this.value }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' }

export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c]!)
}

type Part = SafeHtml | string | number | boolean | null | undefined | Part[]

function render (part: Part): string {
  if (part === null || part === undefined || part === false) return ''
  if (Array.isArray(part)) return part.map(render).join('')
  if (part instanceof SafeHtml) return part.value
  return escapeHtml(part)
}

export function html (strings: TemplateStringsArray, ...values: Part[]): SafeHtml {
  let out = strings[0] ?? ''
  values.forEach((value, i) => { out += render(value) + (strings[i + 1] ?? '') })
  return new SafeHtml(out)
}
