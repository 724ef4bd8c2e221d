#!/usr/bin/env node
// The `authgate` executable (package bin). Exit codes: run()'s own (0, 1, 2); 2 for a UsageError
// (printed without a stack trace); 1 for anything unexpected.
import { run, UsageError } from './index.js'

run(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: Error) => {
  process.stderr.write(`authgate: ${err instanceof UsageError ? err.message : `error: ${err.message}`}\n`)
  process.exitCode = err instanceof UsageError ? 2 : 1
})
