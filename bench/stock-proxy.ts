// The comparison proxy: @fastify/http-proxy as its README sets it up, default options, no
// authentication, no logger (Fastify's default). bench/proxy.ts forks it with BENCH_UPSTREAM and
// PORT; it reports its URL over IPC.
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'

const app = Fastify()
await app.register(httpProxy, { upstream: process.env.BENCH_UPSTREAM! })
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.send?.({ url: `http://127.0.0.1:${process.env.PORT}` })
process.on('disconnect', () => { process.exit(0) })
process.on('SIGTERM', () => { process.exit(0) })
