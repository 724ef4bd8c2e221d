// What an upstream imports (`authgate/verify`) to trust the gateway's identity: the HMAC-signed
// headers, the optional ES256 assertion, and middleware for Fastify and Express. Public API: no
// server code, nothing but node:crypto and fetch, so any Node.js framework can use it.
export { verifyIdentityHeaders, type HeaderSource, type VerifiedIdentity, type VerifyFailure, type VerifyOptions, type VerifyResult } from './headers.js'
export {
  verifyIdentityAssertion, RemoteJwks, staticJwks, importJwk,
  type AssertionFailure, type AssertionOptions, type AssertionResult, type KeySource, type RemoteJwksOptions, type VerifiedAssertion
} from './assertion.js'
export {
  createRequestVerifier, authgateExpress, authgateFastify, fastifyAuthgate,
  type AuthgateOptions, type RequestFailure, type RequestIdentity, type RequestResult
} from './middleware.js'
