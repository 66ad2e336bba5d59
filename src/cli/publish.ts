/** `notification-server publish`: sends one event to a server's /events, as seaf-server would. */
import { signToken } from '../auth/jwt.js';
import { ConfigError } from '../config/config.js';
import { nonEmpty, parseCommandLine } from '../config/flags.js';
import { EventError, parseEvent } from '../protocol/event.js';
import { describeFetchError, httpBaseUrl } from './server-url.js';
import { resolveSigningKey, SIGNING_KEY_OPTIONS, SIGNING_KEY_USAGE } from './signing-key.js';

const PUBLISH_USAGE = `Usage: notification-server publish [options] <type> [<content JSON>]

Signs a publisher token with the server's key and POSTs one event to <url>/events,
the way seaf-server and seahub do. Prints the server's answer; exits 0 on 200.

  notification-server publish repo-update '{"repo_id":"<id>","commit_id":"<commit>"}'
  notification-server publish repo-update --repo <id>

Options:
      --url <url>          the server as publishers reach it, not through the proxy
                           (default: from -c / the environment, else http://127.0.0.1:8083)
      --repo <id>          the library (content.repo_id); enough on its own for a content
                           of just {"repo_id": <id>}
  -h, --help               show this help

${SIGNING_KEY_USAGE}`;

const OPTIONS = {
  ...SIGNING_KEY_OPTIONS,
  url: { type: 'string' },
  repo: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Publisher tokens of seaf-server live 5 minutes; this one is used at once. */
const TOKEN_LIFETIME_SECONDS = 60;
const REQUEST_TIMEOUT_MS = 10_000;

export async function publish(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, OPTIONS, true);
  if (values.help === true) {
    process.stdout.write(PUBLISH_USAGE);
    return 0;
  }
  const body = eventBody(positionals, nonEmpty(values.repo, '--repo', 'a library id'));
  const signing = await resolveSigningKey(values, process.env, process.cwd());
  const base = httpBaseUrl(nonEmpty(values.url, '--url', 'a URL') ?? signing.serverUrl ?? 'http://127.0.0.1:8083');
  const token = signToken({ exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_SECONDS }, signing.key);
  const url = new URL('events', base);

  let response: Response;
  let answer: string;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    answer = await response.text();
  } catch (error) {
    process.stderr.write(`notification-server publish: cannot reach ${url.href}: ${describeFetchError(error)}\n`);
    return 1;
  }
  process.stdout.write(`${response.status} ${response.statusText}\n${answer}`);
  if (response.status === 200) return 0;
  const hint = response.status === 401 || response.status === 403 ? " (is the key the server's?)" : '';
  process.stderr.write(`notification-server publish: the server refused the event with ${response.status}${hint}: ${answer.trim()}\n`);
  return 1;
}

/**
 * `{"type":...,"content":...}` with the content as written (the server forwards it byte for byte),
 * checked by the server's own parser so a bad event is refused here, with its reason.
 */
function eventBody(positionals: string[], repo: string | null): string {
  const [type, contentText, ...extra] = positionals;
  if (type === undefined || type.trim() === '') {
    throw new ConfigError('give the event type: notification-server publish <type> [<content JSON>]; see --help');
  }
  if (extra.length > 0) {
    throw new ConfigError(`unexpected argument ${JSON.stringify(extra[0])}: quote the content JSON as one argument`);
  }
  const body = `{"type":${JSON.stringify(type)},"content":${eventContent(contentText, repo)}}`;
  try {
    parseEvent(body);
  } catch (error) {
    if (error instanceof EventError) throw new ConfigError(`the server would refuse this event: ${error.message}`);
    throw error;
  }
  return body;
}

/** The content as written, with --repo's repo_id added when it has none. */
function eventContent(text: string | undefined, repo: string | null): string {
  if (text === undefined) {
    if (repo === null) throw new ConfigError('give the content JSON (with "repo_id") or --repo <id>');
    return JSON.stringify({ repo_id: repo });
  }
  let fields: unknown;
  try {
    fields = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`the content is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new ConfigError('the content must be a JSON object, like {"repo_id":"<id>"}');
  }
  const given = (fields as Record<string, unknown>)['repo_id'];
  if (repo === null || given === repo) return text;
  if (given !== undefined) throw new ConfigError(`--repo ${repo} differs from the content's repo_id ${JSON.stringify(given)}`);
  return JSON.stringify({ repo_id: repo, ...fields });
}
