import t from 'tap'
import type WebSocket from 'ws'
import { overHighWaterMark, WS_HIGH_WATER_MARK } from '../../src/proxy/websocket-flow.js'
import { combineWsHooks } from '../../src/proxy/websocket.js'

t.test('a destination is over the high-water mark once a message would take its queue past it', async (t) => {
  t.notOk(overHighWaterMark(0, 100), 'an empty queue takes a small message')
  t.notOk(overHighWaterMark(WS_HIGH_WATER_MARK - 100, 100), 'exactly up to the mark')
  t.ok(overHighWaterMark(WS_HIGH_WATER_MARK - 100, 101), 'one byte past it')
  t.ok(overHighWaterMark(0, WS_HIGH_WATER_MARK + 1), 'a single message larger than the mark (up to WS_MAX_PAYLOAD) is sent, then reading stops')
})

t.test('combined wsHooks call every set, in the order given', async (t) => {
  const calls: string[] = []
  const source = {} as WebSocket
  const target = {} as WebSocket
  const hooks = combineWsHooks(
    { onConnect: () => calls.push('a.connect'), onIncomingMessage: () => calls.push('a.in') },
    { onConnect: () => calls.push('b.connect'), onDisconnect: () => calls.push('b.disconnect'), onOutgoingMessage: () => calls.push('b.out') }
  )
  const message = { data: Buffer.from('x'), binary: false }
  hooks.onConnect({}, source, target)
  hooks.onIncomingMessage({}, source, target, message)
  hooks.onOutgoingMessage({}, source, target, message)
  hooks.onDisconnect({}, source)
  t.same(calls, ['a.connect', 'b.connect', 'a.in', 'b.out', 'b.disconnect'])
})
