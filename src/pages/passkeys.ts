// /_authgate/account/passkeys: the signed-in user's passkeys, a form to add one (WebAuthn needs the
// gateway's script: the form is revealed by it) and a plain form per passkey to remove it.
import { html, type SafeHtml } from './html.js'
import { messageBox, page, type Brand } from './layout.js'
import { PASSKEY_SCRIPTS } from './static.js'

export const PASSKEYS_PAGE_PATH = '/_authgate/account/passkeys'
export const ACCOUNT_PAGE_PATH = '/_authgate/account'

export interface PasskeyRow {
  id: string
  name: string
  passwordless: boolean
  createdAt: Date
  lastUsedAt: Date | null
}

export interface PasskeysPageOptions extends Brand {
  username: string
  csrfToken: string
  passkeys: PasskeyRow[]
  error?: string
  notice?: string
  /** Whether the user may add another (MAX_PASSKEYS_PER_USER). */
  canAdd: boolean
}

/** A time as people read it, in UTC (the gateway does not know the reader's zone): 2026-12-02 05:04 UTC. */
export function formatTime (date: Date): string {
  return date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC'
}

function row (p: PasskeyRow, csrfToken: string): SafeHtml {
  return html`<li data-passkey-id="${p.id}">
<p class="passkey-name">${p.name}</p>
<dl>
<dt>Use</dt><dd>${p.passwordless ? 'Sign-in without password' : 'Second factor only'}</dd>
<dt>Added</dt><dd>${formatTime(p.createdAt)}</dd>
<dt>Last used</dt><dd>${p.lastUsedAt === null ? 'Never' : formatTime(p.lastUsedAt)}</dd>
</dl>
<form method="post" action="${PASSKEYS_PAGE_PATH}/remove">
<input type="hidden" name="csrf_token" value="${csrfToken}">
<input type="hidden" name="id" value="${p.id}">
<button class="button secondary" type="submit" aria-label="${`Remove ${p.name}`}">Remove</button>
</form>
</li>`
}

export function passkeysPage (o: PasskeysPageOptions): string {
  const message = o.error !== undefined ? messageBox('error', o.error) : o.notice !== undefined ? messageBox('info', o.notice) : ''
  const list = o.passkeys.length > 0
    ? html`<ul class="passkeys">${o.passkeys.map((p) => row(p, o.csrfToken))}</ul>`
    : html`<p class="muted" id="no-passkeys">You have no passkeys yet.</p>`
  const addForm = o.canAdd
    ? html`<form id="passkey-add" hidden novalidate>
<input type="hidden" name="csrf_token" value="${o.csrfToken}">
<div class="field">
<label for="passkey-name">Name</label>
<input type="text" id="passkey-name" name="name" maxlength="64" required placeholder="e.g. Work laptop" autocomplete="off">
</div>
<label class="checkbox" for="passkey-passwordless"><input type="checkbox" id="passkey-passwordless" name="passwordless" value="1"> Use it to sign in without a password</label>
<div class="field">
<label for="passkey-password">Your current password</label>
<input type="password" id="passkey-password" name="password" autocomplete="current-password" required>
</div>
<button class="button" type="submit">Add a passkey</button>
</form>
<p class="muted" id="passkey-unsupported" hidden>This browser cannot create passkeys.</p>`
    : html`<p class="muted">You have as many passkeys as an account may hold; remove one to add another.</p>`
  return page({
    appName: o.appName,
    logo: o.logo,
    title: 'Passkeys',
    scripts: PASSKEY_SCRIPTS,
    body: html`<h1>Passkeys</h1>
<p class="lead">Signed in as ${o.username}</p>
${message}
<div class="alert" role="alert" id="passkey-error" hidden></div>
${list}
<h2>Add a passkey</h2>
<p class="muted">A passkey is kept by this device, a phone or a security key. It is asked for after your password, or, if you choose, instead of it.</p>
${addForm}
<p class="after-form"><a href="${ACCOUNT_PAGE_PATH}">Back to your account</a></p>`
  })
}
