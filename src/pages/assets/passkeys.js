// The passkey buttons of the gateway's pages (served as /_authgate/static/passkeys.js, after
// @simplewebauthn/browser's bundle, which defines SimpleWebAuthnBrowser). No inline script: the
// pages' Content-Security-Policy allows the gateway's own files only. Without WebAuthn (or without
// JavaScript) the buttons stay hidden and the pages work as before.
/* global SimpleWebAuthnBrowser */
(function () {
  'use strict'
  const CSRF_HEADER = 'x-authgate-csrf'

  function supported () {
    return typeof window.PublicKeyCredential === 'function' && typeof SimpleWebAuthnBrowser === 'object'
  }

  function csrfToken () {
    const input = document.querySelector('input[name="csrf_token"]')
    return input === null ? '' : input.value
  }

  function show (element, text) {
    element.textContent = text
    element.hidden = text === ''
  }

  /** POST JSON to the gateway; resolves with the parsed answer, rejects with its message. */
  function post (path, body) {
    return fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', [CSRF_HEADER]: csrfToken() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {} }).then(function (answer) {
        if (!response.ok) throw new Error(typeof answer.message === 'string' ? answer.message : 'The request failed (' + response.status + ').')
        return answer
      })
    })
  }

  /** The browser's own refusals (the user cancelled, the time ran out) in words. */
  function describe (err) {
    if (err !== null && typeof err === 'object' && (err.name === 'NotAllowedError' || err.name === 'AbortError')) return 'The passkey request was cancelled or timed out. Try again.'
    if (err !== null && typeof err === 'object' && err.name === 'InvalidStateError') return 'This authenticator already holds a passkey for your account.'
    return err instanceof Error ? err.message : 'Something went wrong with the passkey.'
  }

  function signIn (button) {
    const error = document.getElementById('passkey-error')
    const next = document.querySelector('input[name="next"]')
    button.addEventListener('click', function () {
      button.disabled = true
      show(error, '')
      post('/login/passkey/options', {})
        .then(function (options) { return SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: options }) })
        .then(function (response) { return post('/login/passkey', { response, next: next === null ? '/' : next.value }) })
        .then(function (answer) { window.location.assign(answer.location) })
        .catch(function (err) {
          button.disabled = false
          show(error, describe(err))
        })
    })
  }

  /**
   * The second step after a password (the second-step page): the button names where the options
   * and the answer go (data-options-url, data-verify-url); the page's form carries mfa_token.
   */
  function secondFactor (button) {
    const error = document.getElementById('passkey-error')
    const token = document.querySelector('input[name="mfa_token"]')
    const next = document.querySelector('input[name="next"]')
    const extra = () => ({ mfa_token: token === null ? '' : token.value, next: next === null ? '/' : next.value })
    button.addEventListener('click', function () {
      button.disabled = true
      show(error, '')
      post(button.dataset.optionsUrl, extra())
        .then(function (options) { return SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: options }) })
        .then(function (response) { return post(button.dataset.verifyUrl, Object.assign({ response }, extra())) })
        .then(function (answer) { window.location.assign(answer.location) })
        .catch(function (err) {
          button.disabled = false
          show(error, describe(err))
        })
    })
  }

  function add (form) {
    const error = document.getElementById('passkey-error')
    form.addEventListener('submit', function (event) {
      event.preventDefault()
      const submit = form.querySelector('button[type="submit"]')
      const name = form.querySelector('input[name="name"]').value
      const passwordless = form.querySelector('input[name="passwordless"]').checked
      // Asked again before a passkey is added: sent with the options request, which checks it.
      const password = form.querySelector('input[name="password"]').value
      submit.disabled = true
      show(error, '')
      post('/_authgate/account/passkeys/options', { passwordless, password })
        .then(function (options) { return SimpleWebAuthnBrowser.startRegistration({ optionsJSON: options }) })
        .then(function (response) { return post('/_authgate/account/passkeys', { response, name }) })
        .then(function () { window.location.assign('/_authgate/account/passkeys?added=1') })
        .catch(function (err) {
          submit.disabled = false
          show(error, describe(err))
        })
    })
  }

  function start () {
    const unsupported = document.getElementById('passkey-unsupported')
    if (!supported()) {
      if (unsupported !== null) unsupported.hidden = false
      return
    }
    const button = document.getElementById('passkey-sign-in')
    if (button !== null) {
      button.hidden = false
      signIn(button)
    }
    const second = document.getElementById('passkey-second-factor')
    if (second !== null) {
      second.hidden = false
      secondFactor(second)
    }
    const form = document.getElementById('passkey-add')
    if (form !== null) {
      form.hidden = false
      add(form)
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
  else start()
})()
