/**
 * Finds the source text of one top-level member of a JSON object, so an event's `content` is
 * forwarded byte for byte (big integers and number formatting untouched). The input must be valid JSON.
 */

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function skipWhitespace(text: string, at: number): number {
  while (at < text.length && WHITESPACE.has(text.charCodeAt(at))) at++;
  return at;
}

/** Index just past the string starting at `at` (which is a quote). */
function skipString(text: string, at: number): number {
  for (let i = at + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) return i + 1;
  }
  return text.length;
}

/** Index just past the value starting at `at`. */
function skipValue(text: string, at: number): number {
  const first = text.charCodeAt(at);
  if (first === 0x22) return skipString(text, at);
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) {
    let depth = 0;
    for (let i = at; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) i = skipString(text, i) - 1;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return text.length;
  }
  let i = at;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x2c || c === 0x7d || c === 0x5d || WHITESPACE.has(c)) break;
    i++;
  }
  return i;
}

/** The source text of `member` in the top-level object `json`, or null when absent. Last one wins, as in JSON.parse. */
export function rawMember(json: string, member: string): string | null {
  let found: string | null = null;
  let i = skipWhitespace(json, 0);
  if (json.charCodeAt(i) !== 0x7b) return null;
  i = skipWhitespace(json, i + 1);
  while (i < json.length && json.charCodeAt(i) === 0x22) {
    const keyEnd = skipString(json, i);
    const key: unknown = JSON.parse(json.slice(i, keyEnd));
    i = skipWhitespace(json, keyEnd) + 1; // past ':'
    const valueStart = skipWhitespace(json, i);
    const valueEnd = skipValue(json, valueStart);
    if (key === member) found = json.slice(valueStart, valueEnd);
    i = skipWhitespace(json, valueEnd);
    if (json.charCodeAt(i) === 0x2c) i = skipWhitespace(json, i + 1);
  }
  return found;
}
