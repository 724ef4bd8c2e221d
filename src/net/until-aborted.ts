// Waiting on work that cannot be cancelled (a database query, a discovery already in flight) for no
// longer than an AbortSignal allows, typically AbortSignal.timeout(ms). Instead of a hand-written
// setTimeout/clearTimeout pair per caller: the signal owns the timer (unref'd, so it never keeps the
// process alive) and the only thing attached here, the abort listener, is removed however it ends.

/** `promise`'s outcome, or a rejection with `signal.reason` if the signal aborts first. */
export async function untilAborted<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
