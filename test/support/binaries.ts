/** Finds the programs the deployment tests drive (nginx, systemd-analyze, logrotate). */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isCi } from './env.js';

/**
 * The program's path, or null: `extraDirs` first, then PATH, then the sbin and bin dirs
 * (Debian keeps nginx, logrotate and the database servers in /usr/sbin, often off a non-root PATH).
 */
export function locate(name: string, extraDirs: readonly string[] = []): string | null {
  const dirs = [...extraDirs, ...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/**
 * The program's path, or undefined outside CI when it is not installed (the caller skips with
 * `skipReason`). Under CI=true a missing program throws: there, every test must run.
 */
export function requireBinary(name: string, debianPackage: string): string | undefined {
  const found = locate(name);
  if (found !== null) return found;
  if (isCi()) {
    throw new Error(`${name} not found: install the Debian package ${debianPackage} (.ci/run does); CI=true requires these tests to run`);
  }
  return undefined;
}

/** Why a test is skipped (for `{ skip }`), or false when the program is there. */
export function skipReason(binary: string | undefined, name: string, debianPackage: string): string | false {
  return binary === undefined ? `${name} is not installed (Debian package ${debianPackage})` : false;
}
