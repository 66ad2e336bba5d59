/**
 * fast-check arbitraries for JSON as publishers and clients may write it: any formatting,
 * escaped and raw characters, number spellings JSON.stringify never produces (`2.50`,
 * `1E+400`, integers past 2^53). Each string comes with its decoded value so that tests can
 * build documents with known members.
 */
import fc from 'fast-check';

export interface JsonString {
  /** The JSON source, quotes included. */
  text: string;
  /** What JSON.parse makes of it. */
  value: string;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function unicodeEscape(unit: number): string {
  return `\\u${unit.toString(16).padStart(4, '0')}`;
}

/** One code point of `value`, spelled raw when JSON allows it, or escaped (short, \uXXXX, or / as \/). */
function encodeCodePoint(char: string, style: 'raw' | 'escape' | 'upper'): string {
  const code = char.codePointAt(0)!;
  const mustEscape = code < 0x20 || char === '"' || char === '\\';
  if (style === 'raw' && !mustEscape) return char;
  if (char === '/' && style === 'escape') return '\\/';
  if (style === 'escape' && SHORT_ESCAPES[char] !== undefined) return SHORT_ESCAPES[char]!;
  let out = '';
  for (let i = 0; i < char.length; i++) {
    const escaped = unicodeEscape(char.charCodeAt(i));
    out += style === 'upper' ? escaped.toUpperCase().replace('\\U', '\\u') : escaped;
  }
  return out;
}

/** A JSON string literal for `value` (any code points), each one spelled in a random way. */
export function jsonStringOf(value: fc.Arbitrary<string>): fc.Arbitrary<JsonString> {
  return value.chain((decoded) => {
    const chars = [...decoded];
    return fc
      .array(fc.constantFrom<'raw' | 'escape' | 'upper'>('raw', 'raw', 'raw', 'escape', 'upper'), { minLength: chars.length, maxLength: chars.length })
      .map((styles) => ({ text: `"${chars.map((char, i) => encodeCodePoint(char, styles[i]!)).join('')}"`, value: decoded }));
  });
}

/** Any string: ASCII controls, quotes, backslashes, astral code points. */
export const anyString = fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);

export const jsonString = jsonStringOf(anyString);

/** Whitespace JSON allows between tokens. */
export const jsonSpace = fc.constantFrom('', '', ' ', '\n', '\t', '\r\n', '  ');

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
const integerText = fc.oneof(
  fc.constant('0'),
  fc.tuple(fc.constantFrom(...'123456789'), digits(0, 25)).map(([first, rest]) => first + rest),
);

/** Number spellings: big integers, trailing zeros, exponents (even overflowing ones), -0. */
export const jsonNumber = fc
  .tuple(fc.boolean(), integerText, fc.option(digits(1, 8), { nil: undefined }), fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3)), { nil: undefined }))
  .map(([negative, integer, fraction, exponent]) =>
    `${negative ? '-' : ''}${integer}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : exponent.join('')}`,
  );

function members(entries: Array<[string, string, string, string, string, string]>): string {
  return entries.map(([a, key, b, c, value, d]) => `${a}${key}${b}:${c}${value}${d}`).join(',');
}

const tree = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'json-text' },
    fc.oneof(jsonString.map((s) => s.text), jsonNumber, fc.constantFrom('true', 'false', 'null')),
    tie('array'),
    tie('object'),
  ),
  array: fc
    .tuple(jsonSpace, fc.array(fc.tuple(jsonSpace, tie('value'), jsonSpace), { maxLength: 4, depthIdentifier: 'json-text' }))
    .map(([empty, items]) => (items.length === 0 ? `[${empty}]` : `[${items.map(([a, v, b]) => a + v + b).join(',')}]`)),
  object: fc
    .tuple(jsonSpace, objectMembers(tie('value')))
    .map(([empty, entries]) => (entries.length === 0 ? `{${empty}}` : `{${members(entries)}}`)),
}));

function objectMembers(value: fc.Arbitrary<string>, keys: fc.Arbitrary<JsonString> = jsonString) {
  return fc.array(
    fc.tuple(jsonSpace, keys.map((k) => k.text), jsonSpace, jsonSpace, value, jsonSpace),
    { maxLength: 4, depthIdentifier: 'json-text' },
  );
}

/** Any JSON value, as source text. */
export const jsonText: fc.Arbitrary<string> = tree.value;

/**
 * A JSON object as source text with the given members (already encoded values) placed among
 * random others whose keys are not in `reserved`.
 */
export function jsonObjectWith(required: Array<fc.Arbitrary<[JsonString, string]>>, reserved: readonly string[]): fc.Arbitrary<string> {
  const otherKey = jsonString.filter((key) => !reserved.includes(key.value));
  return fc
    .tuple(
      fc.tuple(...required),
      objectMembers(jsonText, otherKey),
      fc.array(fc.nat(), { minLength: required.length, maxLength: required.length }),
      fc.array(fc.tuple(jsonSpace, jsonSpace, jsonSpace, jsonSpace), { minLength: required.length, maxLength: required.length }),
      jsonSpace,
    )
    .map(([fixed, others, positions, spaces, empty]) => {
      const entries = [...others];
      fixed.forEach(([key, value], i) => {
        const [a, b, c, d] = spaces[i]!;
        entries.splice(positions[i]! % (entries.length + 1), 0, [a, key.text, b, c, value, d]);
      });
      return entries.length === 0 ? `{${empty}}` : `{${members(entries)}}`;
    });
}

/** A member whose key is `name` (spelled in a random way) and whose value is `value`. */
export function member(name: string, value: fc.Arbitrary<string>): fc.Arbitrary<[JsonString, string]> {
  return fc.tuple(jsonStringOf(fc.constant(name)), value);
}
