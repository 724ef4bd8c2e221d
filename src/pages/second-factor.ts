// The second factor's pages (LOCAL_MFA): the second sign-in step, the account page, the TOTP
// enrolment page with its QR code, and the page that shows recovery codes once. Plain HTML forms in
// the login page's frame; no script (the pages' CSP has none), the QR code an image of our own.
import { html, type SafeHtml } from './html.js'
import { messageBox, page, type Brand } from './layout.js'
import { PASSKEY_SCRIPTS } from './static.js'

/** Where the second step's passkey button asks for options (`/options`) and sends its answer. */
export const SECOND_STEP_PASSKEY_PATH = '/login/mfa/passkey'

/** Every message these pages show: fixed texts, nothing a request carries. */
export const MFA_MESSAGES = {
  wrongCode: 'That code is not right. Check your authenticator app (or a recovery code) and try again.',
  replayed: 'That code was used already. Wait for your authenticator app to show the next one.',
  stepExpired: 'This sign-in step has expired or was already used. Please sign in again.',
  throttled: (seconds: number) => `Too many failed attempts. Try again in ${Math.ceil(seconds / 60)} minute${seconds > 60 ? 's' : ''}.`,
  csrf: 'This form has expired. Please try again.',
  enrolmentRequired: 'Your administrator requires a second factor for this account. Add an authenticator app or a passkey to continue.',
  signInAgain: 'This session was started without your second factor. Sign out, then sign in again with your second factor to continue.',
  noPendingEnrolment: 'There is no authenticator being added. Start again.',
  alreadyEnrolled: 'This account has an authenticator app already. Remove it first to add another.',
  enrolled: 'Your authenticator app is set up. It will be asked for at every sign-in.',
  totpRemoved: 'The authenticator app was removed from your account, with its recovery codes.',
  recoveryUsed: 'You signed in with a recovery code. Each works once: generate new ones from your account page when few are left.'
}

export interface SecondStepPageOptions extends Brand {
  csrfToken: string
  mfaToken: string
  next: string
  error?: string
  /** The user has passkeys and they can be used at this address: a button for them (passkeys.js). */
  passkey?: boolean
  /**
   * false: the user has no authenticator app (so no recovery codes either): with `passkey`, the code
   * field is left out, since no code could be right, and the page asks for the passkey.
   */
  codes?: boolean
}

/** The second sign-in step: one field for an authenticator code or a recovery code, and a passkey button when the user has one. */
export function secondStepPage (o: SecondStepPageOptions): string {
  const invalid = o.error !== undefined ? html` aria-invalid="true" aria-describedby="mfa-error"` : ''
  // A passkey is this user's only factor: no code field (the form keeps the step's fields for passkeys.js).
  const passkeyOnly = o.passkey === true && o.codes === false
  return page({
    ...brandOf(o),
    title: 'Two-step verification',
    body: html`<h1>Two-step verification</h1>
<p class="lead">${passkeyOnly ? 'Use your passkey to finish signing in.' : 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.'}</p>
${o.error !== undefined ? messageBox('error', o.error, 'mfa-error') : ''}
<form method="post" action="/login/mfa" novalidate${passkeyOnly ? ' hidden' : ''}>
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<input type="hidden" name="mfa_token" value="${o.mfaToken}">
<input type="hidden" name="next" value="${o.next}">
${passkeyOnly
      ? ''
      : html`<div class="field">
<label for="code">Code</label>
<input type="text" class="code" id="code" name="code" inputmode="text" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" maxlength="32" required autofocus${invalid}>
</div>
<button class="button" type="submit">Verify</button>`}
</form>
${o.passkey === true
      // Hidden until the script finds WebAuthn: without it the page is the code form alone.
      ? html`<div class="alert" role="alert" id="passkey-error" hidden></div>
<p class="after-form"><button class="button secondary" type="button" id="passkey-second-factor" data-options-url="${SECOND_STEP_PASSKEY_PATH}/options" data-verify-url="${SECOND_STEP_PASSKEY_PATH}" hidden>Use a passkey instead</button></p>`
      : ''}
<p class="after-form"><a href="/login?next=${encodeURIComponent(o.next)}">Cancel and sign in again</a></p>`,
    ...(o.passkey === true ? { scripts: PASSKEY_SCRIPTS } : {})
  })
}

export interface AccountPageOptions extends Brand {
  csrfToken: string
  username: string
  /** SSO accounts: their IdP handles second factors; nothing to manage here. */
  sso: boolean
  /** LOCAL_MFA is not off: the second factor sections are shown. */
  mfaEnabled: boolean
  required: boolean
  totp: 'none' | 'pending' | 'confirmed'
  recoveryCodesLeft: number
  /** Passkeys registered (managed on their own page). */
  passkeys: number
  /** This session is held until a factor is enrolled (LOCAL_MFA=required). */
  held: boolean
  error?: string
  notice?: string
}

export const PASSKEYS_PATH = '/_authgate/account/passkeys'

/** The signed-in user's account: second factors, recovery codes left, sign out everywhere. */
export function accountPage (o: AccountPageOptions): string {
  const csrf = html`<input type="hidden" name="csrf_token" value="${o.csrfToken}">`
  const codeField = (id: string): SafeHtml => html`<div class="field">
<label for="${id}">Current code from your authenticator app</label>
<input type="text" class="code" id="${id}" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="32" required>
</div>`
  let factors: SafeHtml | string = ''
  if (o.sso) {
    factors = html`<h2>Second factor</h2>
<p>You sign in with single sign-on: your identity provider handles second factors for this account.</p>`
  } else if (o.mfaEnabled) {
    const totp = o.totp === 'confirmed'
      ? html`<li><span>Authenticator app</span><span class="status live" data-factor="totp">On</span></li>
<li><span>Recovery codes left</span><span class="status" data-recovery-codes-left="${o.recoveryCodesLeft}">${o.recoveryCodesLeft}</span></li>`
      : html`<li><span>Authenticator app</span><span class="status" data-factor="totp">Off</span></li>`
    const manage = o.totp === 'confirmed'
      ? html`<details>
<summary>New recovery codes</summary>
<form method="post" action="/_authgate/account/recovery-codes">${csrf}${codeField('regenerate-code')}<button class="button secondary" type="submit">Generate new recovery codes</button></form>
</details>
<details>
<summary>Remove the authenticator app</summary>
<form method="post" action="/_authgate/account/totp/remove">${csrf}${codeField('remove-code')}<button class="button secondary" type="submit">Remove</button></form>
</details>`
      : html`<form method="post" action="/_authgate/account/totp">${csrf}<div class="field">
<label for="totp-password">Your current password</label>
<input type="password" id="totp-password" name="password" autocomplete="current-password" required>
</div><button class="button" type="submit">Add an authenticator app</button></form>`
    const passkeys = html`<li><span>Passkeys</span><span class="status${o.passkeys > 0 ? ' live' : ''}" data-factor="passkeys" data-passkeys="${o.passkeys}">${o.passkeys > 0 ? String(o.passkeys) : 'None'}</span></li>`
    factors = html`<h2>Second factor</h2>
<ul class="factor-list">${totp}${passkeys}</ul>
${manage}
<p class="after-form"><a href="${PASSKEYS_PATH}">${o.passkeys > 0 ? 'Manage passkeys' : 'Add a passkey'}</a></p>`
  }
  const message = o.error !== undefined
    ? messageBox('error', o.error, 'account-error')
    : o.notice !== undefined ? messageBox('info', o.notice, 'account-notice') : o.held ? messageBox('info', o.totp === 'confirmed' || o.passkeys > 0 ? MFA_MESSAGES.signInAgain : MFA_MESSAGES.enrolmentRequired, 'account-notice') : ''
  return page({
    ...brandOf(o),
    title: 'Your account',
    body: html`<h1>Your account</h1>
<p class="lead">Signed in as <strong>${o.username}</strong></p>
${message}
${factors}
<h2>Sessions</h2>
<form method="post" action="/_authgate/account/sign-out-everywhere">${csrf}<button class="button secondary" type="submit">Sign out everywhere</button></form>
<p class="after-form"><a href="/logout">Sign out</a>${o.held ? '' : html` · <a href="/">Back to the application</a>`}</p>`
  })
}

export interface TotpEnrolmentPageOptions extends Brand {
  csrfToken: string
  uri: string
  secret: string
  /** The QR code of `uri`, as a data: URI (an image the gateway drew: no external service). */
  qrDataUri: string
  error?: string
}

/** Scan or type the secret, then confirm with the first code. */
export function totpEnrolmentPage (o: TotpEnrolmentPageOptions): string {
  const invalid = o.error !== undefined ? html` aria-invalid="true" aria-describedby="totp-error"` : ''
  return page({
    ...brandOf(o),
    title: 'Add an authenticator app',
    body: html`<h1>Add an authenticator app</h1>
<p class="lead">Scan this code with your authenticator app, then enter the 6-digit code it shows.</p>
${o.error !== undefined ? messageBox('error', o.error, 'totp-error') : ''}
<img class="qr" src="${o.qrDataUri}" alt="QR code for your authenticator app" width="192" height="192">
<p class="muted">Cannot scan? Enter this key in the app instead:</p>
<code class="secret" data-totp-secret="${o.secret}">${o.secret}</code>
<p class="muted"><a href="${o.uri}" data-otpauth-uri>Open in an authenticator app on this device</a></p>
<form method="post" action="/_authgate/account/totp/confirm" novalidate>
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<div class="field">
<label for="code">Code from the app</label>
<input type="text" class="code" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="32" required autofocus${invalid}>
</div>
<button class="button" type="submit">Turn on</button>
</form>
<p class="after-form"><a href="/_authgate/account">Cancel</a></p>`
  })
}

export interface RecoveryCodesPageOptions extends Brand {
  codes: string[]
  notice: string
  continueTo: string
}

/** The recovery codes, shown this once. */
export function recoveryCodesPage (o: RecoveryCodesPageOptions): string {
  return page({
    ...brandOf(o),
    title: 'Your recovery codes',
    body: html`<h1>Your recovery codes</h1>
${messageBox('info', o.notice, 'account-notice')}
<p>Keep these codes somewhere safe. If you lose your authenticator app, each one signs you in once. They are shown only now.</p>
<ul class="recovery-codes">${o.codes.map((c) => html`<li data-recovery-code="${c}">${c}</li>`)}</ul>
<p><a class="button" href="${o.continueTo}">I have saved them</a></p>`
  })
}

function brandOf (o: Brand): Brand {
  return { appName: o.appName, logo: o.logo }
}
