// How people sign in: the method (local accounts, OIDC or both), what local sign-in asks for, and
// who is an administrator by name.
import type { Fail, Reader } from './environment.js'
import { oneOf, parseBool } from './parse.js'

export type AuthMethod = 'local' | 'oidc' | 'both'
export type LocalAuth = 'username' | 'password'
/** LOCAL_MFA: a second factor for local password accounts: none, offered, or demanded before the upstream. */
export type LocalMfa = 'off' | 'optional' | 'required'

export interface SignInConfig {
  authMethod: AuthMethod
  localAuth: LocalAuth
  allowSelfRegister: boolean
  adminUsernames: string[]
  localMfa: LocalMfa
}

export function parseSignIn (r: Reader, production: boolean): Partial<SignInConfig> {
  const { get, getList, fail } = r
  const authMethod = oneOf('AUTH_METHOD', get('AUTH_METHOD') ?? 'local', ['local', 'oidc', 'both'] as const, fail)
  const localAuth = parseLocalAuth(get('LOCAL_AUTH'), { production, localSignIn: authMethod === 'local' || authMethod === 'both' }, fail)
  const allowSelfRegister = parseBool('ALLOW_SELF_REGISTER', get('ALLOW_SELF_REGISTER') ?? 'true', fail)
  const adminUsernames = getList('ADMIN_USERNAMES', ['admin']).map((u) => u.toLowerCase())
  const localMfa = parseLocalMfa(get('LOCAL_MFA'), { localAuth, localSignIn: authMethod === 'local' || authMethod === 'both' }, fail)
  return { authMethod, localAuth, allowSelfRegister, adminUsernames, localMfa }
}

/**
 * A second factor only means something behind a password: with the name-only sign-in, or without
 * local sign-in at all, a LOCAL_MFA other than off would promise a protection that is not there.
 */
function parseLocalMfa (value: string | undefined, ctx: { localAuth: LocalAuth | undefined, localSignIn: boolean }, fail: Fail): LocalMfa | undefined {
  const localMfa = oneOf('LOCAL_MFA', value ?? 'off', ['off', 'optional', 'required'] as const, fail)
  if (localMfa === undefined || localMfa === 'off') return localMfa
  if (!ctx.localSignIn) return fail('LOCAL_MFA', `is ${localMfa}, but AUTH_METHOD=oidc has no local sign-in: a second factor applies to local password accounts only (the IdP asks for its own)`)
  if (ctx.localAuth === 'username') return fail('LOCAL_MFA', `is ${localMfa}, but LOCAL_AUTH=username signs in by name alone: set LOCAL_AUTH=password for a second factor to mean anything`)
  return localMfa
}

/** docs/PROTOCOL.md#local-sign-in-in-production: with local sign-in in production, the operator says whether a name alone signs in. */
function parseLocalAuth (value: string | undefined, ctx: { production: boolean, localSignIn: boolean }, fail: Fail): LocalAuth | undefined {
  if (value === undefined && ctx.production && ctx.localSignIn) {
    return fail('LOCAL_AUTH', 'must be set when NODE_ENV=production and AUTH_METHOD is local or both: the development default, username, ' +
      'lets anyone who reaches the port sign in as anyone (admin included) by typing a name. Set LOCAL_AUTH=password ' +
      '(create accounts with: npx authgate users add <name> --password), or AUTH_METHOD=oidc for single sign-on only; ' +
      'LOCAL_AUTH=username only on a trusted network')
  }
  return oneOf('LOCAL_AUTH', value ?? 'username', ['username', 'password'] as const, fail)
}
