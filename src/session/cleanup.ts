// Keeps the session table bounded: expired records (ended or not) are deleted in the background, at
// start and then periodically, a little after their expiry (instances' clocks may differ), so that
// the table holds only the sessions of the last SESSION_MAX_AGE. Used logout token ids go once they
// are past their expiry (a replay would be refused as stale by then), and so do WebAuthn challenges
// past theirs (src/db/passkeys.ts: a challenge never used). A failure is logged and retried.
import type { FastifyBaseLogger } from 'fastify'
import type { SessionRepository } from '../db/sessions.js'
import type { PasskeyRepository } from '../db/passkeys.js'
import { CLOCK_SKEW_SECONDS } from './session.js'
import { systemClock, type Clock } from '../clock.js'

export const SESSION_CLEANUP_INTERVAL_MS = 10 * 60_000

export function startSessionCleanup (records: SessionRepository, log: FastifyBaseLogger, intervalMs = SESSION_CLEANUP_INTERVAL_MS, clock: Clock = systemClock, passkeys?: Pick<PasskeyRepository, 'deleteExpiredChallenges'>): { stop: () => void } {
  const run = (): void => {
    // The records' expiry was computed with the same clock (Sessions.start).
    records.deleteExpired(new Date(clock.now() - CLOCK_SKEW_SECONDS * 1000))
      .then((deleted) => { if (deleted > 0) log.debug({ deleted }, 'expired session records deleted') })
      .catch((err: Error) => { log.warn({ err: err.message }, 'deleting expired session records failed; retrying later') })
    records.deleteExpiredLogoutTokenIds(new Date(clock.now() - CLOCK_SKEW_SECONDS * 1000))
      .then((deleted) => { if (deleted > 0) log.debug({ deleted }, 'expired logout token ids deleted') })
      .catch((err: Error) => { log.warn({ err: err.message }, 'deleting expired logout token ids failed; retrying later') })
    // Challenges are refused once expired whatever the clocks say; deleting them late is harmless.
    passkeys?.deleteExpiredChallenges(clock.now() - CLOCK_SKEW_SECONDS * 1000)
      .then((deleted) => { if (deleted > 0) log.debug({ deleted }, 'expired WebAuthn challenges deleted') })
      .catch((err: Error) => { log.warn({ err: err.message }, 'deleting expired WebAuthn challenges failed; retrying later') })
  }
  run()
  const timer = setInterval(run, intervalMs)
  timer.unref()
  return { stop: () => { clearInterval(timer) } }
}
