import t from 'tap'
import { originalRequest, unauthenticatedAnswer } from '../../src/proxy/forward-auth.js'

t.test('originalRequest reads every front proxy\'s naming', async (t) => {
  t.same(originalRequest({ 'x-forwarded-method': 'post', 'x-forwarded-uri': '/a?b' }, 'GET'), { method: 'POST', uri: '/a?b' }, 'Traefik, Caddy')
  t.same(originalRequest({ 'x-original-method': 'PUT', 'x-original-uri': '/n' }, 'GET'), { method: 'PUT', uri: '/n' }, 'nginx')
  t.same(originalRequest({ 'x-original-url': 'https://h/p?q=1' }, 'HEAD'), { method: 'HEAD', uri: '/p?q=1' }, 'ingress-nginx')
  t.same(originalRequest({ 'x-original-url': '::' }, 'GET'), { method: 'GET', uri: undefined }, 'unparseable URL')
  t.same(originalRequest({ 'x-forwarded-uri': ['/a', '/b'] }, 'GET'), { method: 'GET', uri: undefined }, 'repeated header ignored')
  t.same(originalRequest({}, 'GET'), { method: 'GET', uri: undefined })
})

t.test('unauthenticatedAnswer: 401 unless asked to redirect a browser navigation', async (t) => {
  const nav = { accept: 'text/html', 'x-forwarded-uri': '/x' }
  t.same(unauthenticatedAnswer(nav, 'GET', false), { status: 401 })
  t.same(unauthenticatedAnswer(nav, 'GET', true), { status: 302, location: '/login?next=%2Fx' })
  t.same(unauthenticatedAnswer({ ...nav, 'x-forwarded-method': 'DELETE' }, 'GET', true), { status: 401 })
  t.same(unauthenticatedAnswer({ 'x-forwarded-uri': '/x' }, 'GET', true), { status: 401 })
  t.same(unauthenticatedAnswer({ ...nav, 'x-forwarded-uri': 'https://evil.example/' }, 'GET', true), { status: 302, location: '/login?next=%2F' })
})
