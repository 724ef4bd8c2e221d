// The migration history, in order. Names are stored in kysely_migration: never rename one.
import type { Migration } from 'kysely'
import * as users from './0001_users.js'
import * as oidcIdentity from './0002_oidc_identity.js'
import * as sessionRevocation from './0003_session_revocation.js'
import * as loginThrottle from './0004_login_throttle.js'
import * as sessions from './0005_sessions.js'
import * as idpLogout from './0006_idp_logout.js'
import * as refreshTokens from './0007_refresh_tokens.js'
import * as secondFactor from './0008_second_factor.js'
import * as passkeys from './0009_passkeys.js'

export const migrations: Record<string, Migration> = {
  '0001_users': users,
  '0002_oidc_identity': oidcIdentity,
  '0003_session_revocation': sessionRevocation,
  '0004_login_throttle': loginThrottle,
  '0005_sessions': sessions,
  '0006_idp_logout': idpLogout,
  '0007_refresh_tokens': refreshTokens,
  '0008_second_factor': secondFactor,
  '0009_passkeys': passkeys
}
