// When the gateway offers passkeys: LOCAL_MFA is optional or required (the second factor is on),
// local accounts sign in with a password (a passkey beside a name-only sign-in protects nothing),
// and the request can be given a relying party (relying-party.ts). Pure.
import type { Config } from '../../config/index.js'
import { relyingPartyFor, type RelyingParty } from './relying-party.js'

export type PasskeyConfig = Pick<Config, 'localMfa' | 'localAuth' | 'authMethod' | 'publicUrl' | 'production'>

export function passkeysEnabled (config: PasskeyConfig): boolean {
  return config.localMfa !== 'off' && config.localAuth === 'password' && config.authMethod !== 'oidc'
}

/** The relying party for this request when passkeys are offered to it, else undefined. */
export function passkeyRelyingParty (config: PasskeyConfig, request: { protocol: string, host: string | undefined }): RelyingParty | undefined {
  return passkeysEnabled(config) ? relyingPartyFor(config, request) : undefined
}
