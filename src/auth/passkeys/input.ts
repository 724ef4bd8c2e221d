// What the browser sends back from a ceremony, checked for shape before anything reads it: the
// library trusts its input's types, the gateway trusts nothing a request carries. Pure.
import type { AuthenticationResponseJSON, AuthenticatorTransportFuture, RegistrationResponseJSON } from '@simplewebauthn/server'

const BASE64URL = /^[A-Za-z0-9_-]*$/
/** WebAuthn caps credential ids at 1023 bytes: 1364 base64url characters. */
const MAX_CREDENTIAL_ID = 1364
const TRANSPORTS = new Set<string>(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'])

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const b64 = (v: unknown, max: number, min = 1): v is string => typeof v === 'string' && v.length >= min && v.length <= max && BASE64URL.test(v)

/** A credential id as the routes accept it (the removal form, the response's `id`). */
export function isCredentialId (v: unknown): v is string {
  return b64(v, MAX_CREDENTIAL_ID)
}

function common (v: unknown): v is Record<string, unknown> & { id: string, response: Record<string, unknown> } {
  return isObject(v) && isCredentialId(v.id) && v.rawId === v.id && v.type === 'public-key' && isObject(v.response) &&
    b64(v.response.clientDataJSON, 4096) &&
    (v.clientExtensionResults === undefined || isObject(v.clientExtensionResults)) &&
    (v.authenticatorAttachment === undefined || v.authenticatorAttachment === 'platform' || v.authenticatorAttachment === 'cross-platform')
}

/** The transports a registration reports, those the gateway knows (a hint for later ceremonies). */
export function knownTransports (v: unknown): AuthenticatorTransportFuture[] {
  if (!Array.isArray(v)) return []
  return [...new Set(v.filter((t): t is AuthenticatorTransportFuture => typeof t === 'string' && TRANSPORTS.has(t)))].slice(0, TRANSPORTS.size)
}

/** The answer rebuilt from the checked fields only: nothing else the request carried goes on to the library. */
function rebuilt<R> (id: string, response: R): { id: string, rawId: string, type: 'public-key', clientExtensionResults: Record<string, never>, response: R } {
  return { id, rawId: id, type: 'public-key', clientExtensionResults: {}, response }
}

export function parseRegistrationResponse (v: unknown): RegistrationResponseJSON | undefined {
  if (!common(v) || !b64(v.response.attestationObject, 16_384)) return undefined
  const r = v.response
  return rebuilt(v.id, {
    clientDataJSON: r.clientDataJSON as string,
    attestationObject: r.attestationObject as string,
    transports: knownTransports(r.transports)
  })
}

export function parseAuthenticationResponse (v: unknown): AuthenticationResponseJSON | undefined {
  if (!common(v) || !b64(v.response.authenticatorData, 4096) || !b64(v.response.signature, 2048)) return undefined
  const r = v.response
  if (r.userHandle !== undefined && r.userHandle !== null && !b64(r.userHandle, 128, 0)) return undefined
  return rebuilt(v.id, {
    clientDataJSON: r.clientDataJSON as string,
    authenticatorData: r.authenticatorData as string,
    signature: r.signature as string
  })
}

/** The name a user gives a passkey: trimmed, 1 to 64 characters, no control characters. */
export function parsePasskeyName (v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined
  const name = v.trim()
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (name.length === 0 || [...name].length > 64 || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) return undefined
  return name
}
