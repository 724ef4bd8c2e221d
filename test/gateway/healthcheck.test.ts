// The image's HEALTHCHECK (src/ops/healthcheck.ts), run as the container runs it: a separate process
// given only the gateway's environment, against a real gateway.
import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { healthzUrl } from '../../src/ops/healthcheck.js'
import { startGateway } from '../support/gateway.js'
import { nodeArgs } from '../support/compiled.js'

const SCRIPT = resolve('src/ops/healthcheck.ts')

/** Runs the health check in an empty directory (no .env) with just these variables. */
async function healthcheck (env: Record<string, string>): Promise<{ code: number, out: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'authgate-healthcheck-'))
  try {
    const args = await nodeArgs(SCRIPT)
    return await new Promise((resolve) => {
      execFile(process.execPath, args, { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: stdout + stderr })
      })
    })
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
}

/** A port nothing listens on: taken from the kernel, then released. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

t.test('the probe address follows HOST: wildcards on loopback, anything narrower as given', async (t) => {
  const url = (HOST?: string, PORT?: string): string => healthzUrl({ ...(HOST !== undefined ? { HOST } : {}), ...(PORT !== undefined ? { PORT } : {}) })
  t.equal(url(), 'http://127.0.0.1:8080/_authgate/healthz', 'unset: the defaults (loopback in development, every interface in production)')
  t.equal(url('0.0.0.0', '9000'), 'http://127.0.0.1:9000/_authgate/healthz', 'the image\'s HOST=0.0.0.0')
  t.equal(url('::'), 'http://127.0.0.1:8080/_authgate/healthz', ':: listens dual-stack')
  t.equal(url(' ', ' '), 'http://127.0.0.1:8080/_authgate/healthz', 'empty is unset, as the gateway reads it')
  t.equal(url('127.0.0.1'), 'http://127.0.0.1:8080/_authgate/healthz')
  t.equal(url('::1'), 'http://[::1]:8080/_authgate/healthz', 'an IPv6 address in brackets')
  t.equal(url('10.1.2.3', '8443'), 'http://10.1.2.3:8443/_authgate/healthz', 'a single interface: only there')
  t.equal(url('localhost'), 'http://localhost:8080/_authgate/healthz')
})

t.test('against a running gateway: healthy on its address, unhealthy elsewhere', async (t) => {
  const gateway = await startGateway()
  t.teardown(async () => { await gateway.close() })
  const port = new URL(gateway.url).port

  for (const HOST of ['0.0.0.0', '::', '127.0.0.1']) {
    const { code, out } = await healthcheck({ HOST, PORT: port, NODE_ENV: 'production' })
    t.equal(code, 0, `HOST=${HOST}: healthy`)
    t.match(out, `healthy: http://127.0.0.1:${port}/_authgate/healthz answered 200`)
  }

  const elsewhere = await healthcheck({ HOST: '::1', PORT: port })
  t.equal(elsewhere.code, 1, 'HOST=::1 is probed on ::1, where this gateway (on 127.0.0.1) does not listen')
  t.match(elsewhere.out, `unhealthy: http://[::1]:${port}/_authgate/healthz did not answer`)

  const closed = await closedPort()
  const down = await healthcheck({ PORT: String(closed) })
  t.equal(down.code, 1, 'nothing listening: unhealthy')
  t.match(down.out, /^unhealthy: .* did not answer \(ECONNREFUSED\)/)
})
