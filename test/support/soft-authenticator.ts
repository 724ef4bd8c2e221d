// A WebAuthn authenticator in software, for gateway tests that need real registration and assertion
// answers without a browser: a P-256 key per credential, attestation `none`, a signature counter,
// and the user-presence/verification flags chosen per call. What Chromium's virtual authenticator
// does in the browser tests (test/browser/passkeys.test.ts), here answerable for any origin and
// challenge, so that the gateway's refusals (another site, a used challenge, a counter going back)
// can be shown. CBOR through @simplewebauthn/server's own helpers.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { isoCBOR } from '@simplewebauthn/server/helpers'

const b64u = (bytes: Uint8Array | Buffer): string => Buffer.from(bytes).toString('base64url')
const sha256 = (data: Uint8Array | string): Buffer => createHash('sha256').update(data).digest()

export interface SoftCredential { id: string, privateKey: KeyObject, x: Buffer, y: Buffer, counter: number, rpId: string }

export interface CeremonyOptions { challenge: string, rp?: { id?: string }, rpId?: string }

export interface AnswerOverrides {
  /** The origin written into clientDataJSON (default: the one the authenticator was made for). */
  origin?: string
  /** Another challenge than the options'. */
  challenge?: string
  /** User verified (default true). */
  uv?: boolean
  /** The counter to report (default: one more than the last). */
  counter?: number
}

export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = []

  constructor (readonly origin: string) {}

  private authData (rpId: string, flags: number, counter: number, attested?: SoftCredential): Buffer {
    const head = Buffer.alloc(37)
    sha256(rpId).copy(head, 0)
    head[32] = flags
    head.writeUInt32BE(counter, 33)
    if (attested === undefined) return head
    const id = Buffer.from(attested.id, 'base64url')
    const length = Buffer.alloc(2)
    length.writeUInt16BE(id.length)
    const cose = Buffer.from(isoCBOR.encode(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, attested.x], [-3, attested.y]])))
    return Buffer.concat([head, Buffer.alloc(16), length, id, cose])
  }

  private clientData (type: string, options: CeremonyOptions, overrides: AnswerOverrides): string {
    return b64u(Buffer.from(JSON.stringify({ type, challenge: overrides.challenge ?? options.challenge, origin: overrides.origin ?? this.origin, crossOrigin: false })))
  }

  /** The answer to registration options (navigator.credentials.create), as @simplewebauthn/browser sends it. */
  register (options: CeremonyOptions, overrides: AnswerOverrides = {}): { answer: Record<string, unknown>, credential: SoftCredential } {
    const rpId = options.rp?.id ?? options.rpId ?? 'localhost'
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = publicKey.export({ format: 'jwk' })
    const credential: SoftCredential = { id: b64u(randomBytes(32)), privateKey, x: Buffer.from(jwk.x!, 'base64url'), y: Buffer.from(jwk.y!, 'base64url'), counter: overrides.counter ?? 0, rpId }
    const flags = 0x01 | ((overrides.uv ?? true) ? 0x04 : 0) | 0x40
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', this.authData(rpId, flags, credential.counter, credential)]]) as never)
    this.credentials.push(credential)
    return {
      credential,
      answer: {
        id: credential.id,
        rawId: credential.id,
        type: 'public-key',
        clientExtensionResults: {},
        response: { clientDataJSON: this.clientData('webauthn.create', options, overrides), attestationObject: b64u(attestationObject), transports: ['internal'] }
      }
    }
  }

  /** The answer to authentication options (navigator.credentials.get) with this credential. */
  assert (credential: SoftCredential, options: CeremonyOptions, overrides: AnswerOverrides = {}): Record<string, unknown> {
    credential.counter = overrides.counter ?? credential.counter + 1
    const flags = 0x01 | ((overrides.uv ?? true) ? 0x04 : 0)
    const authenticatorData = this.authData(options.rpId ?? credential.rpId, flags, credential.counter)
    const clientDataJSON = this.clientData('webauthn.get', options, overrides)
    const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(Buffer.from(clientDataJSON, 'base64url'))]), credential.privateKey)
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON, authenticatorData: b64u(authenticatorData), signature: b64u(signature) }
    }
  }
}
