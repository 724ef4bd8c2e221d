// The container image's HEALTHCHECK: `node dist/src/ops/healthcheck.js` asks the running gateway's
// /_authgate/healthz and exits 0 (healthy) or 1. It runs inside the container every 30 s, so it
// must find the gateway whatever HOST says: a wildcard (the image's 0.0.0.0, or ::) answers on
// loopback, anything narrower (HOST=::1, HOST=10.0.0.5) only on that address. Its own file, not
// an `authgate` subcommand: the CLI opens the database, which a probe must not touch.
import { isIP } from 'node:net'
import { pathToFileURL } from 'node:url'
import { readEnvironment, type Env } from '../config/index.js'

/** Where the gateway configured by `env` (HOST and PORT as the gateway reads them) surely answers. */
export function healthzUrl (env: Env): string {
  const host = env.HOST?.trim() ?? ''
  const port = env.PORT?.trim() ?? ''
  // Unset: 127.0.0.1 in development, every interface in production; both include 127.0.0.1.
  // :: accepts IPv4 too (Node listens dual-stack: libuv clears IPV6_V6ONLY).
  const wildcard = host === '' || host === '0.0.0.0' || host === '::' || host === '[::]'
  const address = wildcard ? '127.0.0.1' : isIP(host) === 6 ? `[${host}]` : host
  return `http://${address}:${port === '' ? '8080' : port}/_authgate/healthz`
}

/** Exit status 0 when healthz answers 2xx within `timeoutMs`; one line for the health log. */
export async function probe (url: string, timeoutMs = 2500): Promise<{ healthy: boolean, line: string }> {
  try {
    const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) })
    await response.body?.cancel()
    return { healthy: response.ok, line: `${response.ok ? 'healthy' : 'unhealthy'}: ${url} answered ${response.status}` }
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name
    return { healthy: false, line: `unhealthy: ${url} did not answer (${cause})` }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The gateway's own reading of the environment (./.env included); its problems are not ours.
  const { line, healthy } = await probe(healthzUrl(readEnvironment(process.env).values))
  process.stdout.write(line + '\n')
  process.exitCode = healthy ? 0 : 1
}
