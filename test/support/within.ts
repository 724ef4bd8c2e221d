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
