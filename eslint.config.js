// `npm run lint`: ESLint with typescript-eslint's type-checked rules, and prettier's check of the
// formatting (`npm run format` writes it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The direction of dependencies (architecture.md): a folder imports only the ones below it.
const layers = {
  'src/http': ['cli', 'setup', 'github', 'notify'],
  'src/notify': ['cli', 'setup', 'http'],
  'src/github': ['cli', 'setup', 'http', 'notify'],
  'src/setup': ['cli', 'http', 'pipeline', 'notify'],
  'src/pipeline': ['cli', 'setup', 'http', 'github', 'notify'],
  'src/instance': ['cli', 'setup', 'http', 'github', 'notify', 'pipeline'],
  'src/switch': ['cli', 'setup', 'http', 'github', 'notify', 'pipeline'],
  'src/config': ['cli', 'setup', 'http', 'github', 'notify', 'pipeline', 'instance', 'switch', 'util'],
  'src/util': ['cli', 'setup', 'http', 'github', 'notify', 'pipeline', 'instance', 'switch', 'config'],
};
const layering = Object.entries(layers).map(([dir, above]) => ({
  files: [`${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [{ group: above.map((name) => `../${name}/*`), message: `${dir}/ may not import from ${above.join(', ')}: dependencies point down (architecture.md)` }] },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/fixtures/', 'bench/app/', 'demo/app/', 'scripts/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() returns a promise the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // Steps, probes and polls take callbacks that must return a promise (run.step, pollUntil):
      // one that happens to have nothing to await is still right to be async.
      '@typescript-eslint/require-await': 'off',
      // A variable set once, after a cleanup hook that reads it was registered, stays a let.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  ...layering,
  {
    // The modes are chosen once, where the config is read (config/) and in the two factories,
    // switchOf and runnerOf: everything else talks to the Switch or Runner it gets (architecture.md).
    files: ['src/**/*.ts'],
    ignores: ['src/config/**', 'src/setup/**', 'src/switch/switch.ts', 'src/instance/runner.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        ...['BinaryExpression', 'SwitchStatement', 'ConditionalExpression', 'IfStatement', 'LogicalExpression'].map((node) => ({
          selector: `${node} > MemberExpression[property.name=/^(switch|runner)$/]`,
          message: 'no code tests app.switch or app.runner: ask switchOf(app) or runnerOf(app) instead',
        })),
      ],
    },
  },
  {
    // The house's sizes (a file reads in one sitting, a function on a screen or two), in what ships.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', 300],
      'max-lines-per-function': ['error', 80],
    },
  },
  {
    // Every test gets a deadline from test/support/test.ts (why: there).
    files: ['test/**/*.ts'],
    ignores: ['test/support/test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'node:test',
              importNames: ['default', 'test', 'it', 'describe', 'suite'],
              message: "import { test } from '../support/test.js': it gives every test a deadline",
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and the benchmark read what real servers answered (JSON over HTTP, records from disk)
    // and assert on it: typing every such body would add nothing the assertions do not check.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // Fixtures hand out functions (const { duet, succeed } = await setupDuet(t)); none uses this.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
