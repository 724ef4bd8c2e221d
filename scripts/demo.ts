// npm run demo: the whole sign-in experience on this machine, in one command. Development only.
import { DEMO_REFRESH_INTERVAL, DemoRefused, startDemo } from './demo/run.js'
import { ADMIN_GROUP } from './demo/idp.js'

const port = Number(process.env.PORT ?? 8080)

try {
  const demo = await startDemo({ port, logLevel: process.env.LOG_LEVEL })
  const width = Math.max(...demo.providers.flatMap((p) => p.accounts.map((a) => a.username.length)), demo.localAccount.username.length)
  const idps = demo.providers.map((p) => {
    const rows = p.accounts.map((a) => `    ${a.username.padEnd(width)} / ${a.password.padEnd(11)} ${a.name.padEnd(15)} groups: ${a.groups.join(', ')}${a.groups.includes(ADMIN_GROUP) ? '  (administrator)' : ''}`)
    return `  "${p.buttonText}": ${p.name} (${p.issuer}), accounts:\n${rows.join('\n')}`
  })
  process.stdout.write(`
  authgate demo: development only, everything on this machine, nothing kept after Ctrl+C

  Open ${demo.url} and choose one of the ${demo.providers.length} sign-in buttons, one per identity provider.

${idps.join('\n\n')}

  Local account (the form under the buttons):
    ${demo.localAccount.username.padEnd(width)} / ${demo.localAccount.password}

  The application behind the gateway is authgate's demo upstream: it shows the identity it
  received and whether the signature verified. Sign out there to end the provider session too;
  signing out at a provider (<its address>/session/end) ends the gateway sessions it opened as well.

  Change an account's groups at its provider's accounts page (say, take alice out of admins):
${demo.providers.map((p) => `    ${p.issuer}/accounts`).join('\n')}
  a signed-in session carries the new groups within ${DEMO_REFRESH_INTERVAL} s (OIDC_REFRESH_INTERVAL), without signing in again.

  Press Ctrl+C to stop.
`)
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    // A browser tab may hold a connection open; do not wait for it longer than a moment.
    setTimeout(() => process.exit(0), 3000).unref()
    void demo.close().then(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
} catch (err) {
  const code = (err as NodeJS.ErrnoException).code
  const message = err instanceof DemoRefused
    ? err.message
    : code === 'EADDRINUSE' ? `port ${port} is in use; run it elsewhere with PORT=8090 npm run demo` : (err as Error).message
  process.stderr.write(`authgate demo: cannot start: ${message}\n`)
  process.exit(err instanceof DemoRefused ? 2 : 1)
}
