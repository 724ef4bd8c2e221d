// The login page for every AUTH_METHOD: the SSO button, the local form, or both; with at most one
// message (an error, or a notice such as "signed out"). Plain HTML forms: works without JavaScript.
import { usernameProblemMessage } from '../db/username.js'
import { html, type SafeHtml } from './html.js'
import { messageBox, page, type Brand } from './layout.js'
import { PASSKEY_SCRIPTS } from './static.js'

/** Every message the login page shows: its texts are fixed, nothing a request carries is shown. */
export const MESSAGES = {
  invalidCredentials: 'Invalid username or password.',
  invalidUsername: usernameProblemMessage('characters'),
  csrf: 'This form has expired. Please try again.',
  disabled: 'This account is disabled. Contact your administrator.',
  registrationClosed: 'This username is not registered, and new accounts are not created automatically. Contact your administrator.',
  localDisabled: 'Sign-in with a username is not enabled here; use single sign-on.',
  throttled: (seconds: number) => `Too many failed sign-in attempts. Try again in ${Math.ceil(seconds / 60)} minute${seconds > 60 ? 's' : ''}.`,
  providerUnavailable: 'The single sign-on provider cannot be reached right now. Try again in a moment.',
  databaseUnavailable: 'Signing in is not possible right now: the sign-in gateway cannot reach its database. Try again in a moment.',
  buttonUnavailable: 'Cannot be reached right now; try again in a moment.',
  signedOut: 'You have signed out.'
}

export interface SsoButton {
  /** The provider's id, named in the link (`/login/oidc?provider=<id>`); undefined: the only provider. */
  id: string | undefined
  text: string
  /** Its discovery is failing: the button stays (a click retries) and says so. */
  unavailable: boolean
}

export interface LoginPageOptions extends Brand {
  next: string
  csrfToken: string
  showLocalForm: boolean
  askPassword: boolean
  /** One button per SSO provider, in order; undefined: no SSO. */
  sso: SsoButton[] | undefined
  username?: string
  error?: string
  /** A non-error message, e.g. "You have signed out." */
  notice?: string
  /**
   * Offer "Sign in with a passkey" (LOCAL_MFA on, src/auth/passkeys/availability.ts): a button the
   * gateway's script reveals where the browser supports WebAuthn; the page needs allowOwnScripts.
   */
  passkey?: boolean
}

export function loginPage (o: LoginPageOptions): string {
  const hasError = o.error !== undefined
  // The inputs point at the error so a screen reader reads it with the field that has focus.
  const invalid = hasError ? html` aria-invalid="true" aria-describedby="login-error"` : ''
  // Focus where the next keystroke belongs: the password when the username is already filled in.
  const focusPassword = o.askPassword && o.username !== undefined && o.username !== ''
  const message = hasError
    ? messageBox('error', o.error!, 'login-error')
    : o.notice !== undefined ? messageBox('info', o.notice, 'login-notice') : ''
  const form = o.showLocalForm
    ? html`<form method="post" action="/login" novalidate>
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<input type="hidden" name="next" value="${o.next}">
<div class="field">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${o.username ?? ''}" autocomplete="username" autocapitalize="none" spellcheck="false" required${focusPassword ? '' : html` autofocus`}${invalid}>
</div>
${o.askPassword
        ? html`<div class="field">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${focusPassword ? html` autofocus` : ''}${invalid}>
</div>`
        : ''}
<button class="button" type="submit">Sign in</button>
</form>`
    : ''
  const sso = o.sso !== undefined ? ssoButtons(o.sso, o.next, o.showLocalForm) : ''
  // Hidden until the script finds WebAuthn: without it the page is the password form, as before.
  const passkey = o.passkey === true && o.showLocalForm
    ? html`<div class="alert" role="alert" id="passkey-error" hidden></div>
<p class="after-form"><button class="button secondary" type="button" id="passkey-sign-in" hidden>Sign in with a passkey</button></p>`
    : ''
  return page({
    appName: o.appName,
    logo: o.logo,
    title: 'Sign in',
    ...(passkey !== '' ? { scripts: PASSKEY_SCRIPTS } : {}),
    body: html`<h1>Sign in</h1>
<p class="lead">to continue to ${o.appName}</p>
${message}
${sso}
${o.sso !== undefined && o.sso.length > 0 && o.showLocalForm ? html`<div class="divider" role="separator" aria-label="or">or</div>` : ''}
${form}
${passkey}`
  })
}

/** The SSO buttons: links (a GET starts the flow), so they work without JavaScript. */
function ssoButtons (buttons: SsoButton[], next: string, secondary: boolean): SafeHtml {
  const style = secondary ? 'button secondary' : 'button'
  const one = (b: SsoButton): SafeHtml => {
    const id = b.id === undefined ? 'sso' : `sso-${b.id}`
    const href = '/login/oidc?' + (b.id !== undefined ? `provider=${encodeURIComponent(b.id)}&` : '') + 'next=' + encodeURIComponent(next)
    const status = b.unavailable ? html`<span class="sso-status" id="${id}-status">${MESSAGES.buttonUnavailable}</span>` : ''
    return html`<a class="${style}" id="${id}" href="${href}"${b.unavailable ? html` aria-describedby="${id}-status" data-unavailable` : ''}>${b.text}</a>${status}`
  }
  if (buttons.length === 1) return html`<p>${one(buttons[0]!)}</p>`
  return html`<ul class="sso-buttons">${buttons.map((b) => html`<li>${one(b)}</li>`)}</ul>`
}
