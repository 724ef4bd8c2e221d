// What the deploy/ tests share: reading the files as Compose and kustomize read them, the gateway's
// environment as its container would get it (the image's ENV, then the file's), and running the
// TimeTracker entrypoint wrapper with sh.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** YAML as Compose reads it: anchors, aliases and `<<` merge keys resolved. */
export function readYaml (path: string): any {
  return parse(readFileSync(join(ROOT, path), 'utf8'), { merge: true })
}

export function parseYamlStream (text: string): any[] {
  return parseAllDocuments(text).map((d) => d.toJS()).filter((o) => o !== null && o !== undefined)
}

/** Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}. */
export function interpolate (value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$(?:(\$)|([A-Za-z_]\w*)|\{([A-Za-z_]\w*)(?:(:?)([-?])([^}]*))?\})/g, (_m, dollar, plain, name, colon, op, arg) => {
    if (dollar !== undefined) return '$'
    const v = vars[plain ?? name]
    const unset = v === undefined || (colon === ':' && v === '')
    if (op === '-' && unset) return arg
    if (op === '?' && unset) throw new Error(`${name}: ${arg}`)
    return v ?? ''
  })
}

/** The environment the image itself sets (the Dockerfile's last stage's ENV lines). */
export function imageEnvironment (): Record<string, string> {
  const stages = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split(/^FROM /m)
  const env: Record<string, string> = {}
  for (const line of stages[stages.length - 1]!.split('\n')) {
    if (!line.startsWith('ENV ')) continue
    for (const [, k, v] of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[k!] = v!
  }
  return env
}

export function tempDir (prefix: string): { dir: string, remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

/**
 * Runs `sh -c SCRIPT NAME ARGS...` as a container would, with `entrypoint` (the image's entrypoint the
 * script ends by exec'ing) replaced by a stand-in that prints its arguments and its environment.
 */
export function runWrapper (script: string, name: string, args: string[], entrypoint: string, dir: string): { argv: string, env: Record<string, string> } {
  const standIn = join(dir, 'entrypoint.sh')
  writeFileSync(standIn, '#!/bin/sh\nprintf "ARGV=%s\\n" "$*"\nenv\n')
  chmodSync(standIn, 0o755)
  const result = spawnSync('sh', ['-c', script.replaceAll(entrypoint, standIn), name, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } })
  if (result.status !== 0) throw new Error(`the wrapper failed (${result.status}): ${result.stderr}`)
  const lines = result.stdout.split('\n')
  const env: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const i = line.indexOf('=')
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1)
  }
  return { argv: lines[0]!.replace(/^ARGV=/, ''), env }
}

/** generate-secrets.sh into `dir`, as an operator runs it. */
export function generateSecrets (dir: string, env: Record<string, string> = {}): string {
  const result = spawnSync('sh', [join(ROOT, 'deploy/compose/generate-secrets.sh'), dir], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } })
  if (result.status !== 0) throw new Error(`generate-secrets.sh failed: ${result.stderr}`)
  return result.stdout
}
