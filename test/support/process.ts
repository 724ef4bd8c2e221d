// A script run as a real Node process, its output collected. The repository's own (src/, migrations/)
// run compiled when tap collects no coverage (compiled.ts: the same sources, without tsx's loader in
// the child, a third of the CPU); any other, such as a probe a test writes, through tsx.
import { spawn } from 'node:child_process'
import { nodeArgs } from './compiled.js'

export interface ProcessResult { code: number, stdout: string, stderr: string }

/** `env` is the child's whole environment: pass `...process.env` to inherit. */
export async function runNode (script: string, args: string[], opts: { env: NodeJS.ProcessEnv, cwd?: string, stdin?: string }): Promise<ProcessResult> {
  const child = spawn(process.execPath, [...await nodeArgs(script), ...args], { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  child.stdin.end(opts.stdin ?? '')
  const code = await new Promise<number>((resolve) => child.on('close', (c) => { resolve(c ?? -1) }))
  return { code, stdout, stderr }
}
