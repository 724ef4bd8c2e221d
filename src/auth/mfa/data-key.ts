// The second factors' data key (envelope encryption). TOTP secrets and recovery codes outlive any
// SECRET_KEY: sealed directly under it, every enrolled authenticator and every recovery code would
// stop working the day the operator removes the old key after a rotation (docs/DEPLOY.md). So one
// random 32-byte key per deployment seals and hashes them (through keys derived from it, one per
// purpose), and only that key is sealed under SECRET_KEY, in the database (second_factor_key). A
// rotation re-seals that one value (the first start with the new SECRET_KEY and the old one in
// SECRET_KEY_PREVIOUS); the secrets themselves never need touching.
import { hkdfSync, randomBytes } from 'node:crypto'
import { SealedBox } from '../../session/sealed-box.js'
import type { SecondFactorRepository } from '../../db/second-factors.js'

export const DATA_KEY_BYTES = 32
/** The key derivation's purpose for the key that seals the data key (under SECRET_KEY). */
export const DATA_KEY_WRAP_PURPOSE = 'second-factor-key-v1'
/** The purposes of the keys derived from the data key: one per use, never the data key itself. */
export const TOTP_SECRET_PURPOSE = 'totp-secret-v1'
export const RECOVERY_CODE_PURPOSE = 'recovery-code-v1'

/** The message of a gateway that cannot open the data key: what happened and both ways out. */
export const DATA_KEY_UNAVAILABLE_MESSAGE =
  'the second factors\' key (table second_factor_key) is sealed under a SECRET_KEY that is no longer configured, ' +
  'so no enrolled authenticator app or recovery code can be checked. Fix: put the previous SECRET_KEY back in ' +
  'SECRET_KEY_PREVIOUS and start again (the key is then re-sealed under the current SECRET_KEY), or, if that key ' +
  'is lost, run `authgate users mfa-reset <username>` for every user with an authenticator app or recovery codes ' +
  '(they enrol again; a new key is then made), or set LOCAL_MFA=off'

export class SecondFactorKeyUnavailableError extends Error {
  constructor () {
    super(DATA_KEY_UNAVAILABLE_MESSAGE)
    this.name = 'SecondFactorKeyUnavailableError'
  }
}

/** A key for one purpose, derived from the data key (HKDF-SHA-256). */
export function deriveFromDataKey (dataKey: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, 'authgate:second-factor-data-key', purpose, 32))
}

/** The box that seals the data key: keys derived from SECRET_KEY (then SECRET_KEY_PREVIOUS) and the deployment id. */
export function dataKeyWrapper (secretKeys: string[], deploymentId: string): SealedBox {
  return new SealedBox(secretKeys, deploymentId, DATA_KEY_WRAP_PURPOSE, 'second-factor key')
}

/** The stored form of a data key, under the current SECRET_KEY, bound to the deployment. */
export function sealDataKey (wrapper: SealedBox, deploymentId: string, dataKey: Buffer): string {
  return wrapper.seal(deploymentId, dataKey.toString('base64url'))
}

/**
 * What a stored value is to this gateway: the data key and whether it is sealed under the current
 * SECRET_KEY (`current`) or a SECRET_KEY_PREVIOUS one (`previous`: seal it again), or `unopenable`.
 */
export type OpenedDataKey = { state: 'current' | 'previous', dataKey: Buffer } | { state: 'unopenable' }

export function openDataKey (wrapper: SealedBox, deploymentId: string, sealed: string): OpenedDataKey {
  const opened = wrapper.openWithKeyIndex(deploymentId, sealed)
  if (opened === undefined) return { state: 'unopenable' }
  const dataKey = Buffer.from(opened.plaintext, 'base64url')
  if (dataKey.length !== DATA_KEY_BYTES) return { state: 'unopenable' }
  return { state: opened.keyIndex === 0 ? 'current' : 'previous', dataKey }
}

/** How the data key was found at start, for the log line. */
export type DataKeyOutcome = 'created' | 'opened' | 'resealed' | 'replaced'

/** Rounds of read-then-write before giving up (each lost race means another replica wrote: the next read settles it). */
const MAX_ROUNDS = 5

/**
 * The deployment's data key, made, opened or re-sealed as needed; replicas starting at once end with
 * the same one (insert-if-absent and compare-and-set, then read again). A stored key no configured
 * SECRET_KEY opens is replaced only when nothing is sealed or hashed under it (every user reset);
 * otherwise SecondFactorKeyUnavailableError, whose message names the fix.
 */
export async function loadDataKey (repository: SecondFactorRepository, secretKeys: string[], deploymentId: string): Promise<{ dataKey: Buffer, outcome: DataKeyOutcome }> {
  const wrapper = dataKeyWrapper(secretKeys, deploymentId)
  let outcome: DataKeyOutcome | undefined
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stored = await repository.sealedDataKey()
    if (stored === undefined) {
      // Whoever inserts first wins; everyone (the winner too) uses what the next read finds.
      if (await repository.insertDataKeyIfAbsent(sealDataKey(wrapper, deploymentId, randomBytes(DATA_KEY_BYTES)), new Date())) outcome ??= 'created'
      continue
    }
    const opened = openDataKey(wrapper, deploymentId, stored)
    if (opened.state === 'current') return { dataKey: opened.dataKey, outcome: outcome ?? 'opened' }
    if (opened.state === 'previous') {
      // The same key sealed anew: whichever replica's write lands, the key inside is this one.
      await repository.replaceDataKey(stored, sealDataKey(wrapper, deploymentId, opened.dataKey), new Date())
      return { dataKey: opened.dataKey, outcome: 'resealed' }
    }
    // No configured key opens it. A new key is safe only if nothing depends on the old one (the
    // repository checks in the same statement); the next read says which key won.
    if (!(await repository.replaceUnusedDataKey(stored, sealDataKey(wrapper, deploymentId, randomBytes(DATA_KEY_BYTES)), new Date()))) {
      if (await repository.hasSealedSecondFactors()) throw new SecondFactorKeyUnavailableError()
    } else {
      outcome = 'replaced'
    }
  }
  throw new Error('the second factors\' key kept changing while this gateway read it (other replicas starting?); start again')
}
