// How people sign in: the method (local accounts, OIDC or both), what local sign-in asks for, and
// who is an administrator by name.
import type { Fail, Reader } from './environment.js'
import { oneOf, parseBool } from './parse.js'

export type AuthMethod = 'local' | 'oidc' | 'both'
export type LocalAuth = 'username' | 'password'

export interface SignInConfig {
  authMethod: AuthMethod
  localAuth: LocalAuth
  allowSelfRegister: boolean
  adminUsernames: string[]
}

export function parseSignIn (r: Reader, production: boolean): Partial<SignInConfig> {
  const { get, getList, fail } = r
  const authMethod = oneOf('AUTH_METHOD', get('AUTH_METHOD') ?? 'local', ['local', 'oidc', 'both'] as const, fail)
  const localAuth = parseLocalAuth(get('LOCAL_AUTH'), { production, localSignIn: authMethod === 'local' || authMethod === 'both' }, fail)
  const allowSelfRegister = parseBool('ALLOW_SELF_REGISTER', get('ALLOW_SELF_REGISTER') ?? 'true', fail)
  const adminUsernames = getList('ADMIN_USERNAMES', ['admin']).map((u) => u.toLowerCase())
  return { authMethod, localAuth, allowSelfRegister, adminUsernames }
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
