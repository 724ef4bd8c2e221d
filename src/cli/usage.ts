/** A mistake in the command line or its input: printed without a stack trace, exit code 2. */
export class UsageError extends Error {}

export type Out = (line: string) => void
