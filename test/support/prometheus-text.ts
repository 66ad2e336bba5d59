/**
 * A parser of the Prometheus text exposition format (version 0.0.4), strict enough that a
 * malformed line fails the test: HELP and TYPE comments, samples with escaped label values,
 * and the special values +Inf, -Inf and NaN.
 */

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

export class Scrape {
  constructor(
    readonly samples: readonly Sample[],
    /** Metric family name → counter, gauge, histogram, summary or untyped. */
    readonly types: ReadonlyMap<string, string>,
    readonly help: ReadonlyMap<string, string>,
  ) {}

  /** The one sample with exactly this name and exactly these labels; throws when there is none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const wanted = Object.entries(labels).sort();
    const found = this.samples.filter(
      (sample) => sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === JSON.stringify(wanted),
    );
    if (found.length !== 1) throw new Error(`${found.length} samples ${name}${JSON.stringify(labels)} in the scrape`);
    return found[0]!.value;
  }

  /** The sum over the samples of this name whose labels include these. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.samples
      .filter((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v))
      .reduce((total, sample) => total + sample.value, 0);
  }

  /** `after - before` of one sample, for counters between two scrapes. */
  static delta(before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}): number {
    return after.value(name, labels) - before.value(name, labels);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Special values ignore case, as in Prometheus' own parser (prom-client writes `Nan`). */
function parseValue(text: string, line: string): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad sample value ${JSON.stringify(text)} in: ${line}`);
  return Number(text);
}

function parseLabels(text: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let at = 1; // past '{'
  for (;;) {
    if (text[at] === '}') return { labels, rest: text.slice(at + 1) };
    const name = LABEL_NAME.exec(text.slice(at))?.[0];
    if (name === undefined || text[at + name.length] !== '=' || text[at + name.length + 1] !== '"') throw new Error(`bad label in: ${line}`);
    at += name.length + 2;
    let value = '';
    for (;;) {
      const c = text[at];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      at++;
      if (c === '"') break;
      if (c === '\\') {
        const escaped = text[at++];
        if (escaped === 'n') value += '\n';
        else if (escaped === '\\' || escaped === '"') value += escaped;
        else throw new Error(`bad escape in: ${line}`);
      } else {
        value += c;
      }
    }
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`);
    labels[name] = value;
    if (text[at] === ',') at++;
    else if (text[at] !== '}') throw new Error(`expected , or } in: ${line}`);
  }
}

export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (comment === null) continue; // other comments are allowed and carry nothing
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad TYPE in: ${line}`);
        types.set(name, rest);
      } else {
        help.set(name, rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new Error(`bad sample line: ${line}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === '') throw new Error(`bad sample line: ${line}`);
    samples.push({ name, labels, value: parseValue(fields[0]!, line) });
  }
  return new Scrape(samples, types, help);
}

/** Fetches and parses `<baseUrl>/metrics`; fails on anything but a 200 in the text format. */
export async function scrape(baseUrl: string): Promise<Scrape> {
  const response = await fetch(`${baseUrl}/metrics`);
  const body = await response.text();
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}: ${body}`);
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`GET /metrics content-type ${type}`);
  return parsePrometheusText(body);
}

/** Scrapes until `done` holds (generous: the server closes sockets on its own schedule). */
export async function scrapeUntil(baseUrl: string, done: (scrape: Scrape) => boolean, timeoutMs = 10_000): Promise<Scrape> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await scrape(baseUrl);
    if (done(current)) return current;
    if (Date.now() > deadline) throw new Error(`metrics did not reach the expected state within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
