// The gateway as `npm start` runs it, for the benchmarks: `node dist/src/main.js` in a temp directory
// of its own, configured only by environment variables (NODE_ENV=production as in the Docker image,
// SQLite in that directory, the default LOG_LEVEL, LOG_FORMAT=json), its log written to a file.
// Also: building dist/ when it is older than the sources, and signing in as a browser does.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { endWithBenchmark, stopProcess, waitForHttp } from './processes.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const MAIN_JS = join(ROOT, 'dist', 'src', 'main.js')
/** The build's last step copies the pages' assets: without them a build failed half-way. */
const BUILD_OUTPUTS = [MAIN_JS, join(ROOT, 'dist', 'src', 'pages', 'assets', 'authgate.css')]

/** The newest modification time under `path` (a file or a directory tree), in ms. */
function newestMtime (path: string): number {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return readdirSync(path).reduce((newest, name) => Math.max(newest, newestMtime(join(path, name))), stat.mtimeMs)
}

/**
 * Runs `npm run build` when dist/src/main.js is missing or older than anything it is built from
 * (src/, packages/verify/src/, the tsconfig files, package.json), or always with `mode` 'always'.
 * Returns what it did, for the report.
 */
export function ensureBuilt (mode: 'auto' | 'always' | 'never'): string {
  if (mode === 'never') {
    if (!BUILD_OUTPUTS.every(existsSync)) throw new Error('dist/ is missing or incomplete and --build never was given: run `npm run build`')
    return 'not rebuilt (--build never)'
  }
  if (mode === 'auto' && BUILD_OUTPUTS.every(existsSync)) {
    const sources = ['src', join('packages', 'verify', 'src'), 'tsconfig.json', 'tsconfig.build.json', 'package.json'].map((p) => join(ROOT, p)).filter((p) => existsSync(p))
    if (Math.max(...sources.map(newestMtime)) <= Math.min(...BUILD_OUTPUTS.map((p) => statSync(p).mtimeMs))) return 'dist/ up to date with src/, not rebuilt'
  }
  process.stdout.write('building: npm run build\n')
  const built = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] })
  if (built.status !== 0) throw new Error(`npm run build failed (exit ${built.status})`)
  return mode === 'always' ? 'rebuilt (--build always)' : 'rebuilt: dist/ was missing or older than src/'
}

export interface GatewayOptions {
  port: number
  upstreamUrl: string
  /** Variables added to the defaults below, or replacing them. */
  env?: Record<string, string>
  /** Node flags before main.js (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /** 'dist' (the default): dist/src/main.js, as `npm start`. 'tsx': src/main.ts through tsx (no build needed). */
  entry?: 'dist' | 'tsx'
}

export interface LogChunk { bytes: number, lines: number, errors: string[] }

export interface RunningGateway {
  url: string
  pid: number
  child: ChildProcess
  env: Record<string, string>
  /** What the log holds since the last call; the file is then emptied, so a long benchmark does not fill the disk. */
  takeLog: () => LogChunk
  /** SIGTERM (main.ts shuts down cleanly and exits 0), then the temp directory is removed. */
  stop: () => Promise<number | null>
}

/**
 * Starts the gateway and waits until /_authgate/healthz answers. Its stdout (the JSON log) goes to a
 * file: the write system calls a real log destination costs are paid, as in production, and the
 * benchmark can count the log's bytes per request and fail on an error line.
 */
export async function startGateway (options: GatewayOptions): Promise<RunningGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-gateway-'))
  const logFile = join(dir, 'gateway.log')
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(options.port),
    UPSTREAM_URL: options.upstreamUrl,
    DATABASE_URL: 'sqlite:./authgate.db',
    SECRET_KEY: randomBytes(32).toString('base64url'),
    HEADER_SIGNING_SECRET: randomBytes(32).toString('base64url'),
    AUTH_METHOD: 'local',
    LOCAL_AUTH: 'username',
    LOG_FORMAT: 'json',
    SKIP_AUTH_PATHS: '/public/',
    // The load generator is one address standing for many clients: the most one address may hold
    // (it must stay below UPSTREAM_POOL_SIZE, 128 by default).
    CLIENT_MAX_CONCURRENT_REQUESTS: '127',
    ...options.env
  }
  const entry = options.entry === 'tsx'
    ? ['--import', import.meta.resolve('tsx'), join(ROOT, 'src', 'main.ts')]
    : [MAIN_JS]
  // 'a': O_APPEND, so that emptying the file (takeLog) makes the next line start at offset 0.
  const logFd = openSync(logFile, 'a')
  const child = endWithBenchmark(spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry], { cwd: dir, env, stdio: ['ignore', logFd, 'pipe'] }), dir)
  closeSync(logFd)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const url = `http://127.0.0.1:${options.port}`
  const stop = async (): Promise<number | null> => {
    await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
    return child.exitCode
  }
  try {
    await waitForHttp(`${url}/_authgate/healthz`, child, 'the gateway', () => `${stderr}${readFileSync(logFile, 'utf8').slice(-2000)}`)
  } catch (err) {
    await stop()
    throw err
  }
  return {
    url,
    pid: child.pid!,
    child,
    env,
    takeLog: () => {
      const text = readFileSync(logFile, 'utf8')
      truncateSync(logFile, 0)
      const lines = text.split('\n').filter((l) => l !== '')
      const errors = lines.filter((l) => {
        try {
          return (JSON.parse(l) as { level?: number }).level! >= 50
        } catch {
          return true
        }
      })
      return { bytes: Buffer.byteLength(text), lines: lines.length, errors: [...errors.slice(0, 5), ...(stderr !== '' ? [`stderr: ${stderr.slice(0, 500)}`] : [])] }
    },
    stop
  }
}

function setCookies (response: Response): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';', 1)[0]!
    const eq = pair.indexOf('=')
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/** Signs in through GET + POST /login, as a browser does (LOCAL_AUTH=username); returns the session's Cookie header. */
export async function signIn (base: string, username: string): Promise<string> {
  const page = await fetch(`${base}/login`)
  const csrfCookies = setCookies(page)
  const token = /name="csrf_token" value="([^"]+)"/.exec(await page.text())?.[1]
  if (token === undefined) throw new Error(`no csrf_token on ${base}/login`)
  const response = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: Object.entries(csrfCookies).map(([k, v]) => `${k}=${v}`).join('; ') },
    body: new URLSearchParams({ username, csrf_token: token, next: '/' })
  })
  await response.arrayBuffer()
  const session = Object.entries(setCookies(response)).find(([name]) => name === 'authgate' || name === '__Host-authgate')
  if (response.status < 300 || response.status >= 400 || session === undefined) throw new Error(`sign-in at ${base} failed: ${response.status}`)
  return `${session[0]}=${session[1]}`
}
