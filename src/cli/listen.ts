/** `notification-server listen`: follows libraries like a desktop client and prints what arrives. */
import WebSocket from 'ws';

import { signToken } from '../auth/jwt.js';
import { ConfigError } from '../config/config.js';
import { nonEmpty, parseCommandLine } from '../config/flags.js';
import { SEAFILE_SUBPROTOCOL } from '../transport/websocket-endpoint.js';
import { webSocketUrl } from './server-url.js';
import { resolveSigningKey, SIGNING_KEY_OPTIONS, SIGNING_KEY_USAGE } from './signing-key.js';

const LISTEN_USAGE = `Usage: notification-server listen [options] --repo <id> [--repo <id> ...]

Subscribes to libraries the way a desktop client does and prints every message the
server sends (events, and jwt-expired when a token is refused or runs out) as one JSON
line on stdout. Ctrl-C or SIGTERM stops it (exit 0); it exits 1 when the connection
fails or the server closes it.

  notification-server listen --repo <id> --user alice@example.com      (key from JWT_PRIVATE_KEY or -c)
  notification-server listen --url wss://seafile.example.com/notification --repo <id> --token <jwt>

Options:
      --url <url>          the WebSocket: ws://127.0.0.1:8083 directly, or the public
                           https://<host>/notification through the proxy
                           (default: from -c / the environment, else ws://127.0.0.1:8083)
      --repo <id>          a library to follow; repeat for more
      --token <jwt>        a subscriber token for the --repo in the same position; repeat
                           (from GET /seafhttp/repo/<id>/jwt-token)
      --user <name>        instead of --token: sign tokens for this user with the key
  -h, --help               show this help

${SIGNING_KEY_USAGE}`;

const OPTIONS = {
  ...SIGNING_KEY_OPTIONS,
  url: { type: 'string' },
  repo: { type: 'string', multiple: true },
  token: { type: 'string', multiple: true },
  user: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** As long as the file server's tokens. */
const TOKEN_LIFETIME_SECONDS = 72 * 3600;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 2_000;

export async function listen(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, OPTIONS, false);
  if (values.help === true) {
    process.stdout.write(LISTEN_USAGE);
    return 0;
  }
  const repos = (values.repo ?? []).map((repo) => nonEmpty(repo, '--repo', 'a library id')!);
  if (repos.length === 0) throw new ConfigError('give at least one --repo <id> to follow; see --help');
  const tokens = (values.token ?? []).map((token) => nonEmpty(token, '--token', 'a JWT')!);
  const user = nonEmpty(values.user, '--user', 'a user name');
  const urlFlag = nonEmpty(values.url, '--url', 'a URL');

  if (tokens.length > 0) {
    if (user !== null) throw new ConfigError('give --token or --user, not both');
    if (tokens.length !== repos.length) {
      throw new ConfigError(`${repos.length} --repo but ${tokens.length} --token: give one token per library, in the same order`);
    }
    return follow(webSocketUrl(urlFlag ?? 'ws://127.0.0.1:8083'), repos, tokens);
  }
  if (user === null) {
    throw new ConfigError("give --token <jwt> for each --repo, or --user <name> to sign tokens with the server's key");
  }
  const signing = await resolveSigningKey(values, process.env, process.cwd());
  const exp = Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_SECONDS;
  const signed = repos.map((id) => signToken({ repo_id: id, username: user, exp }, signing.key));
  return follow(webSocketUrl(urlFlag ?? signing.serverUrl ?? 'ws://127.0.0.1:8083'), repos, signed);
}

/** Until a signal (0), or until the connection fails or the server closes it (1); tokens[i] is for ids[i]. */
function follow(url: URL, ids: string[], tokens: string[]): Promise<number> {
  const repos = ids.map((id, index) => ({ id, jwt_token: tokens[index]! }));
  return new Promise<number>((resolve) => {
    const socket = new WebSocket(url, [SEAFILE_SUBPROTOCOL], { handshakeTimeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false });
    let stopping = false;
    let finished = false;
    let closeTimer: NodeJS.Timeout | undefined;

    const finish = (code: number, message?: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(closeTimer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (message !== undefined) process.stderr.write(`notification-server listen: ${message}\n`);
      resolve(code);
    };
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      if (socket.readyState !== WebSocket.OPEN) {
        socket.terminate();
        finish(0);
        return;
      }
      socket.close(1000, 'listener stopped');
      closeTimer = setTimeout(() => socket.terminate(), CLOSE_TIMEOUT_MS);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);

    socket.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      socket.terminate();
      finish(1, `${url.href} answered ${status} ${response.statusMessage ?? ''} instead of a WebSocket upgrade${upgradeHint(status)}`);
    });
    socket.on('error', (error) => {
      if (!stopping) finish(1, `cannot connect to ${url.href}: ${error.message}`);
    });
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', content: { repos } }));
      // The server handles frames in order: its pong means the subscribe has been handled.
      socket.ping();
      socket.once('pong', () => {
        const count = repos.length === 1 ? '1 library' : `${repos.length} libraries`;
        process.stderr.write(`notification-server listen: listening at ${url.href} for ${count} (a refused token shows as jwt-expired); Ctrl-C stops\n`);
      });
    });
    socket.on('message', (data, isBinary) => {
      if (!isBinary) process.stdout.write(`${oneLine(data.toString())}\n`);
    });
    socket.on('close', (code, reason) => {
      if (stopping) finish(0);
      else finish(1, `the server closed the connection: ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}`);
    });
  });
}

/** Messages are printed as sent; one a publisher sent over several lines is compacted to one. */
function oneLine(text: string): string {
  if (!/[\r\n]/.test(text)) return text;
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return JSON.stringify(text);
  }
}

function upgradeHint(status: number): string {
  if (status === 426 || status === 400) {
    return ': a proxy in between does not pass the Upgrade and Connection headers (see docs/deploy)';
  }
  if (status === 404) return ': no WebSocket at this path (behind a proxy the path is /notification)';
  if (status === 502 || status === 503 || status === 504) return ': the proxy cannot reach the notification server';
  return '';
}
