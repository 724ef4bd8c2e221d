import { html } from './html.js'
import { page } from './layout.js'

export interface LoginPageOptions {
  appName: string
  next: string
  csrfToken: string
  showLocalForm: boolean
  askPassword: boolean
  sso: { buttonText: string } | undefined
  username?: string
  error?: string
}

export function loginPage (o: LoginPageOptions): string {
  const ssoHref = '/login/oidc?next=' + encodeURIComponent(o.next)
  const error = o.error !== undefined
    ? html`<div class="alert" role="alert" id="login-error"><span class="visually-hidden">Error: </span>${o.error}</div>`
    : ''
  const form = o.showLocalForm
    ? html`<form method="post" action="/login" novalidate>
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<input type="hidden" name="next" value="${o.next}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${o.username ?? ''}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus${o.error !== undefined ? html` aria-describedby="login-error"` : ''}>
${o.askPassword ? html`<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>` : ''}
<button class="button" type="submit">Sign in</button>
</form>`
    : ''
  const sso = o.sso !== undefined
    ? html`<p><a class="button${o.showLocalForm ? ' secondary' : ''}" href="${ssoHref}">${o.sso.buttonText}</a></p>`
    : ''
  return page({
    title: 'Sign in',
    appName: o.appName,
    body: html`<h1>Sign in</h1>
${error}
${sso}
${o.sso !== undefined && o.showLocalForm ? html`<div class="divider">or</div>` : ''}
${form}`
  })
}
