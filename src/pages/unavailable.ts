// What users see while the database is failing (src/db/unavailable.ts): a 503 that says it is a
// moment, with Retry-After, never the error itself.

/** Retry-After on those 503s: a database restart or failover takes seconds to a minute. */
export const RETRY_AFTER_SECONDS = 10

/** A signed-in request refused because the revocation list is too old to vouch for the session. */
export const SESSIONS_UNAVAILABLE = {
  title: 'Temporarily unavailable',
  message: 'The sign-in gateway cannot reach its database, so it cannot check sessions right now. You do not need to sign in again: try again in a moment.'
}

/** Anything else the database failing stopped (the error handler's answer). */
export const DATABASE_UNAVAILABLE = {
  title: 'Temporarily unavailable',
  message: 'The sign-in gateway cannot reach its database right now. Try again in a moment.'
}
