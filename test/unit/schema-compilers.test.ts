// The schema compilers loaded on first use (src/schema-compilers.ts) behave as Fastify's own: a
// route that declares a schema is validated and serialized the same, with or without them.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { lazySchemaCompilers } from '../../src/schema-compilers.js'

function withSchemas (app: FastifyInstance): FastifyInstance {
  const schema = {
    body: { type: 'object', required: ['count'], properties: { count: { type: 'integer' } } },
    response: { 200: { type: 'object', properties: { count: { type: 'integer' } } } }
  }
  app.post('/count', { schema }, async (request) => ({ count: (request.body as { count: number }).count, notInTheSchema: 'dropped' }))
  return app
}

t.test('a route with a schema: validated and serialized as with Fastify\'s default compilers', async (t) => {
  const lazy = withSchemas(Fastify({ schemaController: lazySchemaCompilers }))
  const stock = withSchemas(Fastify())
  t.teardown(async () => { await lazy.close(); await stock.close() })
  for (const [name, payload] of [['coerced', { count: '5' }], ['missing', { other: 1 }], ['wrong type', { count: 'five' }]] as const) {
    const got = await lazy.inject({ method: 'POST', url: '/count', payload })
    const expected = await stock.inject({ method: 'POST', url: '/count', payload })
    t.equal(got.statusCode, expected.statusCode, `${name}: status`)
    t.equal(got.body, expected.body, `${name}: body`)
  }
  const ok = await lazy.inject({ method: 'POST', url: '/count', payload: { count: '5' } })
  t.same(ok.json(), { count: 5 }, 'coerced by the validator, and the serializer kept only the schema\'s fields')
  t.equal((await lazy.inject({ method: 'POST', url: '/count', payload: {} })).statusCode, 400)
})
