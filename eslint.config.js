// ESLint (flat config): the code's standard style (neostandard: standard's rules for ESLint 9,
// TypeScript too) plus a few type-aware typescript-eslint rules the code already follows, chiefly the
// promise ones: an unhandled promise in a proxy is an unhandled rejection or a request that never gets
// its answer. `npm run lint` runs it; `npm test` runs it after the typecheck.
// Type-aware rules need every linted .ts file in a tsconfig: the root one (src, test, scripts, bench,
// migrations) or the nearest one (packages/<name>/tsconfig.json); a deploy/ .ts file needs one too.
import neostandard from 'neostandard'

// Everything but the tests: the strictest rules, which the tests (hand-written IdPs and browsers
// that test truthiness freely) do not follow.
const shipped = ['src/**/*.ts', 'packages/*/src/**/*.ts', 'migrations/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts', 'deploy/**/*.ts']

export default [
  ...neostandard({
    ts: true,
    noJsx: true,
    ignores: ['**/node_modules/', '**/dist/', '**/coverage/', '**/.tap/', 'test/artifacts/', 'data/']
  }),
  {
    name: 'authgate/style',
    rules: {
      // `void promise` as a statement marks a promise deliberately not awaited (no-floating-promises).
      'no-void': ['error', { allowAsStatement: true }],
      // A `let` read by a teardown closure before its one assignment (test/upstream/client-hangup.test.ts).
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      // Packed tables (header fixtures, package maps, benchmark rows) put several properties per line.
      '@stylistic/object-property-newline': 'off'
    }
  },
  {
    name: 'authgate/typed',
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-floating-promises': ['error', {
        // tap's t.test() returns a promise that tap itself awaits and reports on.
        allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }]
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-for-in-array': 'error',
      '@typescript-eslint/restrict-plus-operands': 'error'
    }
  },
  {
    name: 'authgate/shipped',
    files: shipped,
    rules: {
      // ts-standard's settings: `!== undefined`, `=== ''`, `.length > 0`, never a value's truthiness.
      '@typescript-eslint/strict-boolean-expressions': ['error', {
        allowString: false,
        allowNumber: false,
        allowNullableObject: false,
        allowNullableBoolean: false,
        allowNullableString: false,
        allowNullableNumber: false,
        allowAny: false
      }],
      // ts-standard's settings too; a declared function states what it returns (src/cli/index.ts
      // has the one exception).
      '@typescript-eslint/explicit-function-return-type': ['error', {
        allowExpressions: true,
        allowHigherOrderFunctions: true,
        allowTypedFunctionExpressions: true,
        allowDirectConstAssertionInArrowFunctions: true
      }]
    }
  }
]
