import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { commandNotFoundHint } from '../../src/util/run.js';

test('exit 127: the missing command is named, from dash, bash and npm run output alike', () => {
  assert.match(
    commandNotFoundHint('> build\n> nest build\n\nsh: 1: nest: not found\n'),
    /^`nest` was not found \(exit 127\): a tool the build needs that package.json does not list/,
  );
  assert.match(commandNotFoundHint('bash: line 1: tsc: command not found\n'), /^`tsc` was not found/);
  assert.match(commandNotFoundHint('sh: vite: not found'), /^`vite` was not found/);
  assert.match(commandNotFoundHint('nothing recognisable'), /^a command was not found \(exit 127\)/);
});
