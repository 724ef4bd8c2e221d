// Reads the gateway's Prometheus text exposition the way a scraper does, for assertions on one sample.
import { request } from 'undici'

export interface Scrape {
  status: number
  contentType: string
  text: string
  /** The sample `name{labels}` (labels matched exactly, in any order), or undefined when absent. */
  value: (name: string, labels?: Record<string, string>) => number | undefined
}

const SAMPLE = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g

export function parseMetrics (text: string): Array<{ name: string, labels: Record<string, string>, value: number }> {
  const samples = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (m[2] ?? '').matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, (_all, c: string) => c === 'n' ? '\n' : c)
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

export async function scrape (url: string): Promise<Scrape> {
  const res = await request(url)
  const text = await res.body.text()
  const samples = res.statusCode === 200 ? parseMetrics(text) : []
  return {
    status: res.statusCode,
    contentType: String(res.headers['content-type'] ?? ''),
    text,
    value: (name, labels = {}) => {
      const wanted = Object.entries(labels)
      return samples.find((s) => s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v))?.value
    }
  }
}
