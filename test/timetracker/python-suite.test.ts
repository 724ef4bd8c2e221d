// The TimeTracker integration's own Python tests (integrations/timetracker/), run against TimeTracker
// itself: the checkout in TIMETRACKER_DIR with Debian's packages for it. Each integration finding
// (Socket.IO without identity, ADMIN_USERNAMES re-promotion, the skip list, the signing secret,
// public URLs, the disabled-account page) has a test there.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { findPython, IN_CI, requireTool } from '../support/tools.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const checkout = process.env.TIMETRACKER_DIR
const found = checkout !== undefined && existsSync(checkout + '/app/__init__.py') ? checkout : undefined
const python = findPython('import flask_login, flask_sqlalchemy, flask_migrate, flask_socketio, flask_babel, authlib')

if (requireTool(t, 'a TimeTracker checkout in TIMETRACKER_DIR', found, 'set TIMETRACKER_DIR to a TimeTracker checkout') &&
    requireTool(t, "python3 with TimeTracker's packages", python, 'see docs/TIMETRACKER.md for the Debian packages')) {
  t.test('the TimeTracker integration suite passes against TimeTracker itself', async (t) => {
    const dir = ROOT + 'integrations/timetracker'
    const r = spawnSync(python, ['-m', 'unittest', '-v', 'test_authgate_timetracker'], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LANG: 'C.UTF-8',
        TIMETRACKER_DIR: found,
        PYTHONPATH: [ROOT + 'integrations/flask', ROOT + 'scripts/timetracker/python'].join(':'),
        PYTHONDONTWRITEBYTECODE: '1'
      },
      encoding: 'utf8',
      timeout: 180_000
    })
    t.equal(r.status, 0, r.stderr.split('\n').slice(-30).join('\n'))
    t.match(r.stderr, /\nOK/)
    t.match(r.stderr, /test_socketio_connect_needs_the_sessions_own_user \S+ \.\.\. ok/)
    if (IN_CI) t.notMatch(r.stderr, /skipped/, 'in CI every test runs')
  })
}
