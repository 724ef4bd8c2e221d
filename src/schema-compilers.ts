// Fastify's JSON-schema compilers (ajv for validation, fast-json-stringify for serialization), loaded
// the first time a route declares a schema instead of with Fastify: no gateway route does, and the
// two with their dependencies are several megabytes of every process's memory. A route that
// declares one gets Fastify's default compilers, with Fastify's default options.
import { createRequire } from 'node:module'
import type { FastifyServerOptions } from 'fastify'

const require = createRequire(import.meta.url)
type Factory = (...args: unknown[]) => unknown

function onFirstUse (module: string): Factory {
  return (...args) => (require(module) as () => Factory)()(...args)
}

/** Fastify's `schemaController` option, for every Fastify instance of the gateway. */
export const lazySchemaCompilers: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: onFirstUse('@fastify/ajv-compiler') as never,
    buildSerializer: onFirstUse('@fastify/fast-json-stringify-compiler') as never
  }
}
