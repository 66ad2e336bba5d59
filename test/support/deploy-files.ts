/** The files in docs/deploy/, read the way the tests check them. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type DeployFile =
  | 'README.md'
  | 'nginx.conf'
  | 'apache.conf'
  | 'haproxy.cfg'
  | 'Caddyfile'
  | 'notification-server.service'
  | 'notification-server.logrotate';

export function deployFilePath(name: DeployFile): string {
  return fileURLToPath(new URL(`../../../docs/deploy/${name}`, import.meta.url));
}

export function readDeployFile(name: DeployFile): string {
  return readFileSync(deployFilePath(name), 'utf8');
}

/** A systemd unit as section → key → values (a key may repeat); comments and blank lines dropped. */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const equals = line.indexOf('=');
    if (current === null || equals <= 0) throw new Error(`unit line ${index + 1} is neither a section nor key=value: ${raw}`);
    const key = line.slice(0, equals).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(equals + 1).trim()]);
  }
  return sections;
}

/** Seconds in a duration as nginx, HAProxy and systemd write them: `3600s`, `1h`, `90`, `5min`. */
export function durationSeconds(text: string, bareUnit: 's' | 'ms'): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?$/.exec(text.trim());
  if (match === null) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  const value = Number(match[1]);
  const unit = match[2] ?? bareUnit;
  const factor: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600, d: 86_400 };
  return value * factor[unit]!;
}
