// The ACCESS_RULES that the benchmarks use: ten rules of the kind an operator writes, one of which
// (/reports) the benchmark's signed-in user `bench-user` passes by name. Shared by bench/proxy.ts
// (the `real-rules` gateway) and bench/access-rules.ts (the check alone), so both measure the same rules.
export const BENCH_USER = 'bench-user'

export const TEN_RULES = [
  '/admin=admin', '/reports=group:finance,user:alice,user:bench-user', '/billing=group:finance',
  '/hr=group:hr,email-domain:example.com', '/api/internal=group:ops', '/settings/security=admin',
  '/audit=group:auditors,admin', '/exports=group:finance,group:ops', '/team/payroll=group:hr',
  '/metrics=group:ops,user:bench-user'
].join(';')

/** A path under the /reports rule, which bench-user passes: the check runs, then the request is proxied. */
export const PATH_UNDER_RULE = '/reports/2026/q3'
