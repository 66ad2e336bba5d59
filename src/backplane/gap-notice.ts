/** What a node says on the gap channel: libraries whose events the other nodes did not get. */
import type { BackplaneGap } from './backplane.js';

export function encodeGapNotice(gap: BackplaneGap): string {
  const libraries = gap.libraries === 'all' ? 'all' : [...gap.libraries];
  return JSON.stringify({ v: 1, node: gap.node, outageMs: gap.outageMs, libraries, ...(gap.cutOff === 'history-lost' ? { lost: true } : {}) });
}

/** The gap another node announced, or null for bytes that are not a notice of ours. */
export function decodeGapNotice(bytes: Buffer): BackplaneGap | null {
  let notice: unknown;
  try {
    notice = JSON.parse(bytes.toString());
  } catch {
    return null;
  }
  const record = typeof notice === 'object' && notice !== null ? (notice as Record<string, unknown>) : {};
  const { node, libraries, outageMs, lost } = record;
  const list = libraries === 'all' ? 'all' : Array.isArray(libraries) && libraries.every((l) => typeof l === 'string') ? new Set(libraries as string[]) : null;
  if (record['v'] !== 1 || typeof node !== 'string' || list === null) return null;
  if (lost === true) return { cutOff: 'history-lost', node, libraries: list, outageMs: 0 };
  return { cutOff: 'another-node', node, libraries: list, outageMs: typeof outageMs === 'number' ? outageMs : 0 };
}
