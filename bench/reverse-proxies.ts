// nginx and Caddy as plain reverse proxies in front of the benchmark's origin, each as the current
// user in a temp directory of its own (generated configuration, pid file, logs, temp paths), from
// Debian's packages (`apt install nginx-light caddy`). The benchmark installs nothing: a missing
// binary is reported and its target skipped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { endWithBenchmark, stopProcess, waitForHttp } from './processes.js'

export interface ReverseProxy {
  url: string
  pid: number
  version: string
  /** Empties the access log (nginx), so that a long benchmark does not fill the disk. */
  takeLog: () => void
  stop: () => Promise<void>
}

/** The binary's path, or undefined when it is not installed (PATH, then Debian's location). */
export function findBinary (name: string, debianPath: string): string | undefined {
  const which = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  const found = which.status === 0 ? which.stdout.trim() : ''
  if (found !== '') return found
  return existsSync(debianPath) ? debianPath : undefined
}

async function startServer (what: string, command: string, args: string[], env: Record<string, string>, dir: string, url: string): Promise<{ child: ChildProcess, output: string }> {
  const output = join(dir, 'output.log')
  const fd = openSync(output, 'a')
  const child = endWithBenchmark(spawn(command, args, { cwd: dir, env, stdio: ['ignore', fd, fd] }), dir)
  closeSync(fd)
  await waitForHttp(url, child, what, () => readFileSync(output, 'utf8').slice(-2000), 30_000).catch(async (err: unknown) => {
    await stopProcess(child)
    throw err
  })
  return { child, output }
}

/**
 * nginx: one worker (`worker_processes 1`; the master process is there too, and the benchmark counts
 * both), keep-alive connections to the origin (`keepalive` in the upstream block, HTTP/1.1 without
 * `Connection: close`), the default access log (nginx logs every request unless told not to, like
 * the gateway at its default level) into the temp directory.
 */
export async function startNginx (binary: string, port: number, originUrl: string): Promise<ReverseProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-nginx-'))
  const origin = new URL(originUrl)
  const temp = (name: string): string => { mkdirSync(join(dir, name)); return join(dir, name) }
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  upstream origin {
    server ${origin.host};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`)
  const version = spawnSync(binary, ['-v'], { encoding: 'utf8' }).stderr.trim()
  const url = `http://127.0.0.1:${port}`
  const { child } = await startServer('nginx', binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { PATH: process.env.PATH ?? '' }, dir, url)
  return {
    url,
    pid: child.pid!,
    version,
    takeLog: () => { truncateSync(join(dir, 'access.log'), 0) },
    stop: async () => { await stopProcess(child); rmSync(dir, { recursive: true, force: true }) }
  }
}

/**
 * Caddy: `caddy run` with a generated Caddyfile, GOMAXPROCS=1 (one core, as the gateway's one
 * process), the admin endpoint off, no automatic HTTPS, its data and config directories in the temp
 * directory. Caddy's default is no access log; it is left so.
 */
export async function startCaddy (binary: string, port: number, originUrl: string): Promise<ReverseProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-caddy-'))
  const origin = new URL(originUrl)
  writeFileSync(join(dir, 'Caddyfile'), `{
  admin off
  auto_https off
  storage file_system ${join(dir, 'data')}
}

http://127.0.0.1:${port} {
  bind 127.0.0.1
  reverse_proxy ${origin.host}
}
`)
  const version = spawnSync(binary, ['version'], { encoding: 'utf8' }).stdout.trim().split(' ')[0] ?? '?'
  const url = `http://127.0.0.1:${port}`
  const env = { PATH: process.env.PATH ?? '', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), GOMAXPROCS: '1' }
  const { child } = await startServer('caddy', binary, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], env, dir, url)
  return {
    url,
    pid: child.pid!,
    version: `caddy ${version}`,
    takeLog: () => {},
    stop: async () => { await stopProcess(child); rmSync(dir, { recursive: true, force: true }) }
  }
}
