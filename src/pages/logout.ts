// The "Sign out?" page: what a /logout that may come from another site gets instead of signing out
// (auth/logout-gate.ts). One POST form with the CSRF token, and a way back. No autofocus on the
// button: a page that navigates here must not turn the user's next Enter into a sign-out.
import { html } from './html.js'
import { page, type Brand } from './layout.js'

export function logoutConfirmationPage (o: Brand & { csrfToken: string }): string {
  return page({
    appName: o.appName,
    logo: o.logo,
    title: 'Sign out?',
    body: html`<h1>Sign out?</h1>
<p class="lead">Do you want to sign out of ${o.appName}?</p>
<form method="post" action="/logout">
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<button class="button" type="submit">Sign out</button>
</form>
<p class="after-form"><a class="button secondary" href="/">Stay signed in</a></p>`
  })
}
