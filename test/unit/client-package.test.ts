import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const clientDir = fileURLToPath(new URL('../../../client/', import.meta.url));

describe('the client package', () => {
  it('the built module imports nothing but its own files: no runtime dependency, nothing Node-only', () => {
    const files = readdirSync(join(clientDir, 'dist')).filter((name) => name.endsWith('.js'));
    assert.ok(files.includes('index.js'), 'client/dist/index.js is built');
    for (const file of files) {
      const source = readFileSync(join(clientDir, 'dist', file), 'utf8');
      const specifiers = [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)].map((match) => match[1]!);
      for (const specifier of specifiers) assert.match(specifier, /^\.\/[\w-]+\.js$/, `${file} imports ${specifier}`);
      assert.doesNotMatch(source, /\b(require\(|process\.|Buffer\b)/, `${file} uses a Node-only global`);
    }
  });

  it('ships type declarations and declares no dependencies', () => {
    const manifest = JSON.parse(readFileSync(join(clientDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest['dependencies'], undefined);
    assert.equal(manifest['type'], 'module');
    const declarations = readFileSync(join(clientDir, 'dist', 'index.d.ts'), 'utf8');
    assert.match(declarations, /NotificationClient/);
  });
});
