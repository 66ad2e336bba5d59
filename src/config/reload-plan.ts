import { isDeepStrictEqual } from 'node:util';
import type { Config } from './config.js';
import { nameOf, ROWS, setValueAt, valueAt, type Row } from './settings.js';

/**
 * What a reload (SIGHUP) does with a freshly loaded configuration, as the `reload` column of the
 * table says: settings bound to a socket, a pool or a timer made at start keep their value and are
 * named, so the admin knows a restart is needed.
 */
export interface ReloadPlan {
  /** The configuration to run with: `next` for what changes live, the running one for the rest. */
  config: Config;
  /** Settings whose new value takes effect now (names as in seafile.conf [notification]). */
  applied: string[];
  /** Settings that changed but keep their old value until a restart. */
  needsRestart: string[];
}

/** Each Config field once, as the first row that fills it says; rows kept out of Config have none. */
const FIELDS = ROWS.reduce<Array<{ path: NonNullable<Row['at']> | keyof Config; name: string; live: boolean }>>((fields, row) => {
  const path = row.at ?? row.partOf;
  if (path !== undefined && path !== null && !fields.some((field) => field.path === path)) {
    fields.push({ path, name: row.reloadName ?? nameOf(row), live: row.reload !== 'restart' });
  }
  return fields;
}, []);

export function planReload(running: Config, next: Config): ReloadPlan {
  // From `next`, so that what no row fills (where the key came from) follows the key.
  const config: Config = { ...next, limits: { ...next.limits }, history: { ...next.history } };
  const applied: string[] = [];
  const needsRestart: string[] = [];
  for (const { path, name, live } of FIELDS) {
    if (isDeepStrictEqual(valueAt(running, path), valueAt(next, path))) continue;
    if (live) applied.push(name);
    else {
      needsRestart.push(name);
      setValueAt(config, path, valueAt(running, path));
    }
  }
  return { config, applied, needsRestart };
}
