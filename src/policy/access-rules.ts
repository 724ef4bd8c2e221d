// ACCESS_RULES: which signed-in users may open which paths of the application. Parsed and compiled
// once at startup; evaluated on every proxied request, WebSocket upgrade and forward-auth check.
// Guards against a path that the gateway reads one way and the upstream another: every reading an
// upstream might make of the path (percent-decoded once or more, ";params" dropped, "//" merged,
// letters in any case) must pass the rule that covers it, so no spelling slips under a rule.
import { checkUsername } from '../db/username.js'

export type Requirement =
  | { kind: 'admin' }
  | { kind: 'user', username: string }
  | { kind: 'group', group: string }
  | { kind: 'email-domain', domain: string }

export interface AccessRule {
  /** As configured, for messages and logs: "/admin". */
  path: string
  /** Lower-case, without a trailing "/": what request paths are compared with. */
  match: string
  requirements: Requirement[]
}

/** Who is asking: the session's identity. `email` counts only when the provider verified it. */
export interface Subject {
  username: string
  isAdmin: boolean
  email: string | null
  emailVerified: boolean
  groups: readonly string[]
}

export type AccessDecision =
  | { ok: true }
  /** `rule`: the user meets none of the requirements of `path`'s rule; `ambiguous-path`: the path has too many readings to check. */
  | { ok: false, reason: 'rule' | 'ambiguous-path', rule: string }

export type ParseResult = { ok: true, rules: AccessRule[] } | { ok: false, problems: string[] }

const ALLOWED: AccessDecision = Object.freeze({ ok: true })

/**
 * Parse `<path>=<requirement>[,<requirement>...]` rules separated by `;`. Every bad rule is reported
 * (one message each, naming the rule); an empty value is no rules. Rules come back longest path first,
 * the order evaluation wants.
 */
export function parseAccessRules (value: string): ParseResult {
  const problems: string[] = []
  const rules: AccessRule[] = []
  const seen = new Set<string>()
  for (const raw of value.split(';')) {
    const text = raw.trim()
    if (text === '') continue
    const eq = text.indexOf('=')
    if (eq < 0) {
      problems.push(`"${text}" must be <path>=<requirement>[,<requirement>...], e.g. /admin=admin`)
      continue
    }
    const path = text.slice(0, eq).trim()
    const pathProblem = rulePathProblem(path)
    if (pathProblem !== undefined) {
      problems.push(`"${text}": ${pathProblem}`)
      continue
    }
    const match = matchForm(path)
    if (seen.has(match)) {
      problems.push(`"${text}": a second rule for ${path}; give each path one rule, with all its requirements separated by commas`)
      continue
    }
    seen.add(match)
    const requirements: Requirement[] = []
    const texts = text.slice(eq + 1).split(',').map((s) => s.trim())
    if (texts.every((s) => s === '')) {
      problems.push(`"${text}": no requirement after "="; use admin, user:<username>, group:<group> or email-domain:<domain>`)
      continue
    }
    for (const requirementText of texts) {
      if (requirementText === '') continue
      const parsed = parseRequirement(requirementText)
      if (typeof parsed === 'string') problems.push(`"${text}": ${parsed}`)
      else requirements.push(parsed)
    }
    rules.push({ path, match, requirements })
  }
  if (problems.length > 0) return { ok: false, problems }
  rules.sort((a, b) => b.match.length - a.match.length)
  return { ok: true, rules }
}

/** Rule paths are compared with normalised request paths, so they must be plain themselves. */
function rulePathProblem (path: string): string | undefined {
  if (!path.startsWith('/')) return 'the path must start with /'
  if (path.includes('//') || /(^|\/)\.\.?(\/|$)/.test(path) || /[%\\?#;=,\s]/.test(path)) {
    return 'the path must be plain: no . or .. segments, //, %, \\, ?, #, ;, =, commas or spaces'
  }
  return undefined
}

function matchForm (path: string): string {
  const lower = path.toLowerCase()
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

function parseRequirement (text: string): Requirement | string {
  if (text.toLowerCase() === 'admin') return { kind: 'admin' }
  const colon = text.indexOf(':')
  const kind = colon < 0 ? text : text.slice(0, colon).toLowerCase()
  const argument = colon < 0 ? '' : text.slice(colon + 1).trim()
  const known = 'use admin, user:<username>, group:<group> or email-domain:<domain>'
  if (colon < 0 || !['user', 'group', 'email-domain'].includes(kind)) return `unknown requirement "${text}"; ${known}`
  if (argument === '') return `"${text}" names nobody; ${known}`
  if (kind === 'user') {
    const checked = checkUsername(argument.toLowerCase())
    return checked.ok ? { kind: 'user', username: checked.username } : `"${text}": not a username this gateway can have (1 to 64 letters, digits and . _ @ + -)`
  }
  if (kind === 'group') return { kind: 'group', group: argument }
  const domain = argument.toLowerCase()
  return DOMAIN.test(domain) ? { kind: 'email-domain', domain } : `"${text}": not a domain name (such as example.com)`
}

/** Whether `subject` meets one requirement. Groups are exact and case-sensitive, as the provider sent them. */
export function meetsRequirement (subject: Subject, requirement: Requirement): boolean {
  switch (requirement.kind) {
    case 'admin': return subject.isAdmin
    case 'user': return subject.username === requirement.username
    case 'group': return subject.groups.includes(requirement.group)
    case 'email-domain': return subject.emailVerified && emailDomain(subject.email) === requirement.domain
  }
}

/** The lower-cased domain of a plain `local@domain` address; undefined for anything else ("a@b@c"). */
export function emailDomain (email: string | null): string | undefined {
  if (email === null) return undefined
  const at = email.indexOf('@')
  if (at <= 0 || at !== email.lastIndexOf('@') || at === email.length - 1) return undefined
  return email.slice(at + 1).toLowerCase()
}

/**
 * The rule that decides for `path` (a normalised request path): the longest rule covering it by whole
 * segments, compared case-insensitively. `/admin` covers `/admin`, `/admin/` and `/admin/x`, not `/administrator`.
 */
export function ruleFor (rules: readonly AccessRule[], path: string): AccessRule | undefined {
  // toLowerCase makes a new string even when nothing changes, and most paths are lower-case already.
  const lower = isLowerCaseAscii(path) ? path : path.toLowerCase()
  for (const rule of rules) {
    const m = rule.match
    if (m === '/' || lower === m || (lower.startsWith(m) && lower.charCodeAt(m.length) === 47 /* / */)) return rule
  }
  return undefined
}

/** ASCII without capitals: toLowerCase would return the same characters. */
function isLowerCaseAscii (path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c > 127 || (c >= 65 && c <= 90)) return false
  }
  return true
}

/**
 * Decide whether `subject` may open `path` (the normalised path that is proxied). Paths without `%`,
 * `;`, `//` or `\` have one reading and take one lookup; others are checked in every reading.
 * It runs on every signed-in request: the one-reading case allocates nothing (bench/access-rules.ts).
 */
export function checkAccess (rules: readonly AccessRule[], path: string, subject: Subject): AccessDecision {
  if (rules.length === 0) return ALLOWED
  if (hasOneReading(path)) return decide(ruleFor(rules, path), subject)
  const readings = pathReadings(path)
  if (readings === undefined) return { ok: false, reason: 'ambiguous-path', rule: path }
  for (const reading of readings) {
    const decision = decide(ruleFor(rules, reading), subject)
    if (!decision.ok) return decision
  }
  return ALLOWED
}

/** The decision of one rule (none: allowed). A loop, not `some` with a closure: nothing allocated when the user passes. */
function decide (rule: AccessRule | undefined, subject: Subject): AccessDecision {
  if (rule === undefined) return ALLOWED
  for (const requirement of rule.requirements) {
    if (meetsRequirement(subject, requirement)) return ALLOWED
  }
  return { ok: false, reason: 'rule', rule: rule.path }
}

/** Nothing an upstream could decode, strip, merge or turn around: the path is its only reading. */
function hasOneReading (path: string): boolean {
  return !path.includes('%') && !path.includes(';') && !path.includes('//') && !path.includes('\\')
}

/** Beyond this many spellings a path is refused rather than checked: no legitimate URL needs them. */
export const MAX_SPELLINGS = 256
/** Upstreams that decode a path twice exist (%252e); three times is the most any reading is given. */
const MAX_DECODES = 3

/**
 * Every path an upstream might make of `path`, by any sequence of: percent-decoding (up to three
 * times: %252e), dropping `;params` from each segment (Tomcat, Jetty), merging `//` (nginx, Werkzeug),
 * reading `\` as `/` (IIS); dot segments resolved at the end, as servers do. undefined: the path
 * still decodes further after three rounds, or has more than MAX_SPELLINGS spellings.
 */
export function pathReadings (path: string): string[] | undefined {
  if (hasOneReading(path)) return [path]
  const readings = new Set<string>()
  /** Every spelling met so far, with how many percent-decodings it took. */
  const decodes = new Map<string, number>([[path, 0]])
  const queue = [path]
  /** Queue a spelling not met before; false when that makes too many. */
  const visit = (candidate: string, decoded: number): boolean => {
    if (decodes.has(candidate)) return true
    decodes.set(candidate, decoded)
    return queue.push(candidate) <= MAX_SPELLINGS
  }
  for (let i = 0; i < queue.length; i++) {
    const spelling = queue[i]!
    const decoded = decodes.get(spelling)!
    readings.add(resolveDotSegments(spelling))
    const once = percentDecode(spelling)
    if (once !== spelling && decoded === MAX_DECODES) return undefined
    if (
      !visit(stripSegmentParameters(spelling), decoded) ||
      !visit(mergeSlashes(spelling), decoded) ||
      !visit(backslashesAsSlashes(spelling), decoded) ||
      (once !== spelling && !visit(once, decoded + 1))
    ) return undefined
  }
  return [...readings]
}

function stripSegmentParameters (path: string): string {
  return path.includes(';') ? path.split('/').map((segment) => segment.split(';', 1)[0]).join('/') : path
}

function mergeSlashes (path: string): string {
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path
}

function backslashesAsSlashes (path: string): string {
  return path.includes('\\') ? path.replaceAll('\\', '/') : path
}

/** percentDecode's byte buffer, reused: it runs synchronously, and a Buffer per character was most of its cost. */
let decodeBuffer = Buffer.allocUnsafe(1024)

/** Valid %XX escapes decoded (as UTF-8, invalid sequences as U+FFFD); anything else left as it is. */
function percentDecode (path: string): string {
  if (!path.includes('%')) return path
  // A UTF-16 code unit is at most 3 bytes of UTF-8 (a lone surrogate becomes U+FFFD's three).
  if (decodeBuffer.length < path.length * 3) decodeBuffer = Buffer.allocUnsafe(path.length * 3)
  const bytes = decodeBuffer
  let length = 0
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    const high = c === 37 ? hexDigit(path.charCodeAt(i + 1)) : -1
    const low = high < 0 ? -1 : hexDigit(path.charCodeAt(i + 2))
    if (low >= 0) {
      bytes[length++] = high * 16 + low
      i += 2
    } else if (c < 128) {
      bytes[length++] = c
    } else {
      length += bytes.write(path[i]!, length, 'utf8')
    }
  }
  return bytes.toString('utf8', 0, length)
}

/** The value of one hexadecimal digit's character code; -1 for anything else (NaN past the end too). */
function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48 // 0-9
  if (c >= 97 && c <= 102) return c - 87 // a-f
  if (c >= 65 && c <= 70) return c - 55 // A-F
  return -1
}

/** `.` and `..` segments resolved, as URL parsers and servers do. */
function resolveDotSegments (path: string): string {
  // A dot segment starts the path or follows a "/": without either there is nothing to resolve.
  if (!path.startsWith('.') && !path.includes('/.')) return path
  const segments = path.split('/')
  if (!segments.some((s) => s === '.' || s === '..')) return segments.join('/')
  const out: string[] = []
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!
    const last = i === segments.length - 1
    if (s === '.' || s === '..') {
      if (s === '..' && out.length > 1) out.pop()
      if (last) out.push('')
    } else {
      out.push(s)
    }
  }
  return out.join('/')
}
