// What the benchmarks read about the processes they run, from Linux's /proc: CPU time (utime +
// stime) and resident memory, summed over a process and its descendants (nginx's master and worker,
// the gateway's primary and its WORKERS), plus a free loopback port and a wait for a server to answer.
import { execFileSync, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())
  } catch {
    return 100
  }
})()
const pageSize = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE']).toString().trim())
  } catch {
    return 4096
  }
})()

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces), or undefined. */
function statFields (pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** `pid` and every live descendant (read from each process's parent in /proc/<pid>/stat). */
export function processTree (pid: number): number[] {
  const children = new Map<number, number[]>()
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return [pid]
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const ppid = Number(statFields(Number(entry))?.[1])
    if (!Number.isFinite(ppid)) continue
    const list = children.get(ppid) ?? []
    list.push(Number(entry))
    children.set(ppid, list)
  }
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []))
  return tree
}

/** utime + stime, in ms, summed over `pids` (each process's own, all its threads); undefined off Linux. */
export function cpuMs (pids: number[]): number | undefined {
  let total = 0
  for (const pid of pids) {
    const fields = statFields(pid)
    if (fields === undefined) return undefined
    total += (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks
  }
  return total
}

/** Resident set in bytes, summed over `pids` (pages shared between them count once per process). */
export function rssBytes (pids: number[]): number | undefined {
  let total = 0
  for (const pid of pids) {
    const fields = statFields(pid)
    if (fields === undefined) return undefined
    total += Number(fields[21]) * pageSize
  }
  return total
}

/** A loopback port free right now (the kernel's choice; closed again before it is returned). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

/** Waits until `url` answers over HTTP (any status), or throws once `child` exited or `timeoutMs` passed. */
export async function waitForHttp (url: string, child: ChildProcess, what: string, describeFailure: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before answering on ${url}: ${describeFailure()}`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      return
    } catch {
      if (Date.now() > deadline) throw new Error(`${what} did not answer on ${url} within ${timeoutMs / 1000} s: ${describeFailure()}`)
      await sleep(100)
    }
  }
}

const running = new Map<ChildProcess, string>()
/**
 * `child` is terminated (SIGTERM) and its temp directory `dir` removed if the benchmark exits without
 * stopping it, on an error say: a server spawned without an IPC channel (the gateway, nginx, Caddy)
 * would otherwise outlive it.
 */
export function endWithBenchmark (child: ChildProcess, dir: string): ChildProcess {
  if (running.size === 0) {
    process.on('exit', () => {
      for (const [c, d] of running) {
        c.kill('SIGTERM')
        rmSync(d, { recursive: true, force: true })
      }
    })
  }
  running.set(child, dir)
  child.once('exit', () => { running.delete(child) })
  return child
}

/** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
export async function stopProcess (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(timer)
}
