// `authgate/verify`, kept working for upstreams that import the verifier from the gateway package.
// The verifier is its own package now, @authgate/verify (packages/verify): an upstream that only
// checks signatures installs that one, without the gateway's server dependencies.
export * from '@authgate/verify'
