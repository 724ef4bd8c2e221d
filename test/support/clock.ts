// A clock the test moves by hand (src/clock.ts), for AppOptions.clock and the classes that take one:
// crossing a session's expiry, a revocation's second or a throttle window without sleeping. It stands
// still until moved. Start it near the real time: what does not read it (the session cookie's own
// encryption timestamp, the database's defaults, other processes) keeps real time.
import type { Clock } from '../../src/clock.js'

export class TestClock implements Clock {
  constructor (private ms: number = Date.now()) {}

  now (): number {
    return this.ms
  }

  advance (ms: number): void {
    this.ms += ms
  }

  /** The start of the current second: a test that crosses into the next one knows where it is. */
  static atWholeSecond (ms: number = Date.now()): TestClock {
    return new TestClock(Math.floor(ms / 1000) * 1000)
  }
}
