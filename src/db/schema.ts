import type { ColumnType, Generated } from 'kysely'

// Timestamps are written as ISO-8601 strings on both dialects (PostgreSQL casts them to timestamptz);
// PostgreSQL reads them back as Date, SQLite as string: the repository normalises.
type Timestamp = ColumnType<Date | string, string, string>
// Flags are written as 1/0, which both SQLite integers and PostgreSQL booleans accept.
type Flag = ColumnType<boolean | number, number, number>

export interface UsersTable {
  id: Generated<number>
  username: string
  full_name: string | null
  email: string | null
  is_admin: Flag
  is_active: Flag
  password_hash: string | null
  oidc_issuer: string | null
  oidc_sub: string | null
  created_at: Timestamp
  last_login_at: Timestamp | null
  /** Sessions issued before this instant are no longer accepted (`authgate sessions revoke`). */
  sessions_revoked_at: Timestamp | null
}

/** Failed sign-in counters (src/auth/local/throttle.ts). */
export interface LoginThrottleTable {
  key: string
  attempts: number
  /** Milliseconds since the epoch; PostgreSQL reads bigint back as a string. */
  reset_at: ColumnType<number | string, number, number>
}

/** One row per sign-in; the session cookie carries its id. */
export interface SessionsTable {
  id: string
  user_id: number
  login_method: string
  created_at: Timestamp
  expires_at: Timestamp
  /** Set by logout: the session is refused from then on, on every instance. */
  ended_at: Timestamp | null
  /** SSO: the IdP's refresh token, encrypted (src/session/refresh-token-cipher.ts); null once the session ends. */
  refresh_token: string | null
  /** SSO: the last successful re-validation with the IdP (or the sign-in). */
  validated_at: Timestamp | null
  /** SSO: a replica is refreshing this session until then (one at a time). */
  refreshing_until: Timestamp | null
  /** SSO: the identity the last re-validation found (JSON, src/session/identities.ts); null: the cookie's. */
  identity: string | null
  identity_version: Generated<number>
  identity_changed_at: Timestamp | null
  /** OIDC sessions: the issuer and the ID token's `sid` (the IdP session), for IdP-initiated logout. */
  oidc_issuer: string | null
  idp_session_id: string | null
}

/** Logout tokens already used (back-channel logout): a second use of a jti is refused. */
export interface LogoutTokenIdsTable {
  issuer: string
  jti: string
  /** Milliseconds since the epoch; PostgreSQL reads bigint back as a string. */
  expires_at: ColumnType<number | string, number, number>
}

/** Exactly one row (singleton = 1): this deployment's random id, mixed into the cookie keys. */
export interface DeploymentTable {
  singleton: number
  id: string
  created_at: Timestamp
}

/** The second factors' data key, sealed under SECRET_KEY (src/auth/mfa/data-key.ts): one row, singleton = 1. */
export interface SecondFactorKeyTable {
  singleton: number
  sealed_key: string
  created_at: Timestamp
  updated_at: Timestamp
}

/** A user's TOTP authenticator (src/auth/mfa/totp.ts): one per user, pending until confirmed. */
export interface UserTotpTable {
  user_id: number
  /** Sealed under a key derived from the second-factor data key (src/auth/mfa/data-key.ts), never the base32 secret itself. */
  secret: string
  confirmed_at: Timestamp | null
  /** The time step of the last code accepted (replays refused); PostgreSQL reads bigint back as a string. */
  last_step: ColumnType<number | string | null, number | null, number | null>
  created_at: Timestamp
}

/** One-time recovery codes, as keyed hashes (src/auth/mfa/recovery-codes.ts). */
export interface RecoveryCodesTable {
  user_id: number
  code_hash: string
  created_at: Timestamp
  used_at: Timestamp | null
}

/** The second sign-in step's tokens, as hashes: valid 5 minutes, used once. */
export interface MfaTokensTable {
  token_hash: string
  user_id: number
  next: string
  /** Milliseconds since the epoch; PostgreSQL reads bigint back as a string. */
  expires_at: ColumnType<number | string, number, number>
  used_at: Timestamp | null
}

/** Passkeys (WebAuthn credentials) of local password accounts (src/db/passkeys.ts). */
export interface PasskeysTable {
  /** The credential id, base64url. */
  id: string
  user_id: number
  /** The COSE public key, base64url. */
  public_key: string
  /** PostgreSQL reads bigint back as a string. */
  counter: ColumnType<number | string, number, number>
  /** JSON array of transports, or null. */
  transports: string | null
  name: string
  /** Chosen by the user for sign-in without a password (else a second factor only). */
  passwordless: Flag
  created_at: Timestamp
  last_used_at: Timestamp | null
}

/** WebAuthn challenges issued and not used yet: each is consumed once, by one DELETE. */
export interface WebauthnChallengesTable {
  challenge: string
  purpose: string
  user_id: number | null
  /** Milliseconds since the epoch; PostgreSQL reads bigint back as a string. */
  expires_at: ColumnType<number | string, number, number>
}

export interface Database {
  users: UsersTable
  login_throttle: LoginThrottleTable
  sessions: SessionsTable
  logout_token_ids: LogoutTokenIdsTable
  deployment: DeploymentTable
  second_factor_key: SecondFactorKeyTable
  user_totp: UserTotpTable
  recovery_codes: RecoveryCodesTable
  mfa_tokens: MfaTokensTable
  passkeys: PasskeysTable
  webauthn_challenges: WebauthnChallengesTable
}
