// npm run example:timetracker -- <TimeTracker checkout>: TimeTracker behind authgate on this
// machine, with a demo identity provider, in one command. Development only.
import { resolve } from 'node:path'
import { ExampleRefused, startTimeTrackerExample } from './timetracker/run.js'

const USAGE = 'usage: npm run example:timetracker -- <path to a TimeTracker checkout>   (ports: GATEWAY_PORT=8080 TIMETRACKER_PORT=5000 IDP_PORT=9400)'

function port (name: string, fallback: number): number {
  const value = process.env[name] ?? String(fallback)
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    process.stderr.write(`example:timetracker: ${name} must be a port number (0: any free one), not ${JSON.stringify(value)}\n${USAGE}\n`)
    process.exit(2)
  }
  return Number(value)
}

const checkout = process.argv[2]
if (checkout === undefined || checkout === '' || process.argv.length > 3) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}

// Ctrl+C from the first moment: TimeTracker runs in its own process group, so a Ctrl+C during
// start-up must still stop it (once it is up; a failed start cleans up after itself).
let stopping = false
let stopExample: (() => Promise<void>) | undefined
const stop = (): void => {
  if (stopping) return
  stopping = true
  void stopExample?.()
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, stop)

try {
  const example = await startTimeTrackerExample({
    // npm runs scripts in the package's folder; a relative path means one from where it was typed.
    checkout: resolve(process.env.INIT_CWD ?? process.cwd(), checkout),
    gatewayPort: port('GATEWAY_PORT', 8080),
    timetrackerPort: port('TIMETRACKER_PORT', 5000),
    idpPort: port('IDP_PORT', 9400)
  })
  stopExample = async () => {
    // close() is bounded (the gateway's grace period, then TimeTracker's); this is only a safety net.
    setTimeout(() => process.exit(1), 20_000).unref()
    await example.close().then(() => process.exit(0), (err: Error) => {
      process.stderr.write(`example:timetracker: while stopping: ${err.message}\n`)
      process.exit(1)
    })
  }
  if (stopping) await stopExample()
  const idpRows = example.accounts.map((a) => `    ${a.username.padEnd(6)} / ${a.password.padEnd(11)} ${a.name.padEnd(15)} groups: ${a.groups.join(', ')}${a.groups.includes('admins') ? '  (administrator)' : ''}`)
  const localRows = example.localAccounts.map((a) => `    ${a.username.padEnd(6)} / ${a.password.padEnd(11)} ${a.fullName.padEnd(15)}${a.admin ? ' (administrator)' : ''}`.trimEnd())
  process.stdout.write(`
  TimeTracker behind authgate: development only, everything on this machine, nothing kept after Ctrl+C

  Open ${example.url}

  Sign in with SSO: the demo identity provider (${example.issuer}), accounts:
${idpRows.join('\n')}

  Or with a local account (the form under the button):
${localRows.join('\n')}

  TimeTracker itself listens on ${example.timetrackerUrl} and answers only what the gateway signed
  (except ${example.skipAuthPaths}). Its output: ${example.timetrackerLog}

  Press Ctrl+C to stop.
`)
} catch (err) {
  const message = (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
    ? `${(err as Error).message}; choose other ports with GATEWAY_PORT, TIMETRACKER_PORT and IDP_PORT`
    : (err as Error).message
  process.stderr.write(`example:timetracker: cannot start: ${message}\n`)
  process.exit(err instanceof ExampleRefused ? 2 : 1)
}
