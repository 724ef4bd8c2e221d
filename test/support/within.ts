// Bounded waits for tests: a promise that must settle within a generous bound, or the test fails
// with what it was waiting for (instead of hanging until tap's file timeout).

export async function within<T> (promise: Promise<T>, boundMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`not within ${boundMs} ms: ${what}`)) }, boundMs) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Waits until `condition` holds, at most `timeoutMs`; returns whether it did. */
export async function eventually (condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

/** `work`'s result, or undefined if it took longer than `timeoutMs` (a stalled gateway, say). */
export async function answeredWithin<T> (work: Promise<T>, timeoutMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([work, new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, timeoutMs) })])
  } finally {
    clearTimeout(timer)
  }
}
