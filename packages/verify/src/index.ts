// @authgate/verify: what an upstream application imports to trust the identity authgate forwards —
// the HMAC-signed headers, the optional ES256 assertion, and middleware for Fastify and Express.
// Guards against forged, altered or replayed identity headers. No server code and no framework
// import: node:crypto for the HMAC, jose for the JWT.
export { verifyIdentityHeaders, type HeaderSource, type VerifiedIdentity, type VerifyFailure, type VerifyOptions, type VerifyResult } from './headers.js'
export {
  verifyIdentityAssertion, RemoteJwks, staticJwks, importJwk,
  type AssertionFailure, type AssertionOptions, type AssertionResult, type KeySource, type RemoteJwksOptions, type VerificationKey, type VerifiedAssertion
} from './assertion.js'
export {
  createRequestVerifier, authgateExpress, authgateFastify, fastifyAuthgate,
  type AuthgateOptions, type RequestFailure, type RequestIdentity, type RequestResult
} from './middleware.js'
