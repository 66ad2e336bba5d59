import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/config/config.js';
import { durationSeconds, parseUnit, readDeployFile, type DeployFile } from '../support/deploy-files.js';

const PING_INTERVAL_S = DEFAULTS.pingIntervalMs / 1000;
// WebSocketEndpoint.drain waits up to 2 s for closed clients to go after the drain window.
const STOP_SECONDS = DEFAULTS.drainMs / 1000 + 2;

/** The one value of a directive like `proxy_read_timeout 3600s;` or `timeout tunnel 1h`. */
function directive(text: string, pattern: RegExp): string {
  const found = [...text.matchAll(pattern)];
  assert.equal(found.length, 1, `expected exactly one ${pattern} in the snippet, found ${found.length}`);
  return found[0]![1]!;
}

function withoutComments(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n');
}

describe('docs/deploy: the files and the page that quotes them', () => {
  const quoted: Array<[DeployFile, string]> = [
    ['nginx.conf', 'nginx'],
    ['apache.conf', 'apache'],
    ['haproxy.cfg', 'haproxy'],
    ['Caddyfile', 'caddy'],
    ['notification-server.service', 'ini'],
    ['notification-server.logrotate', ''],
  ];
  for (const [file, language] of quoted) {
    it(`README.md quotes ${file} exactly`, () => {
      assert.ok(
        readDeployFile('README.md').includes(`\`\`\`${language}\n${readDeployFile(file)}\`\`\`\n`),
        `docs/deploy/README.md no longer quotes docs/deploy/${file} as it is: copy the file into its code block`,
      );
    });
  }
});

describe('docs/deploy proxies: upgrade headers, timeouts above the ping interval, prefix stripping', () => {
  it('nginx passes Upgrade and Connection over HTTP/1.1 and waits longer than the ping interval', () => {
    const nginx = withoutComments(readDeployFile('nginx.conf'));
    assert.match(nginx, /proxy_http_version 1\.1;/);
    assert.match(nginx, /proxy_set_header Upgrade \$http_upgrade;/);
    assert.match(nginx, /proxy_set_header Connection \$connection_upgrade;/);
    // One per location: the WebSocket and SSE ones idle between pings, a long poll waits up to 25 s.
    const timeouts = [...nginx.matchAll(/proxy_read_timeout\s+(\S+);/g)].map((match) => durationSeconds(match[1]!, 's'));
    assert.equal(timeouts.length, 3);
    for (const timeout of timeouts) {
      assert.ok(timeout > Math.max(PING_INTERVAL_S, 25), `proxy_read_timeout ${timeout} s is not above the ping interval ${PING_INTERVAL_S} s and the 25 s of a long poll`);
    }
  });

  it('nginx passes SSE on unbuffered, and logs it without the query string that carries the tokens', () => {
    const nginx = withoutComments(readDeployFile('nginx.conf'));
    const sse = /location = \/notification\/sse \{([^}]*)\}/.exec(nginx)?.[1] ?? '';
    assert.match(sse, /proxy_buffering off;/);
    assert.match(sse, /access_log \S+ notif_no_query;/);
    assert.match(nginx, /log_format notif_no_query '[^']*\$uri[^']*';/);
    assert.doesNotMatch(/log_format notif_no_query '([^']*)'/.exec(nginx)?.[1] ?? '', /\$request |\$args|\$request_uri|\$query_string/);
  });

  it('Apache maps /notification/ping before /notification, the WebSocket over ws://', () => {
    const apache = withoutComments(readDeployFile('apache.conf'));
    const ping = apache.indexOf('ProxyPass        /notification/ping http://127.0.0.1:8083/ping/');
    const socket = apache.indexOf('ProxyPass        /notification ws://127.0.0.1:8083/');
    assert.ok(ping >= 0 && socket >= 0, 'both ProxyPass lines are there');
    assert.ok(ping < socket, 'Apache uses the first matching ProxyPass: /notification/ping must come first');
    for (const path of ['sse', 'poll']) {
      const fallback = apache.indexOf(`ProxyPass        /notification/${path} `);
      assert.ok(fallback >= 0 && fallback < socket, `/notification/${path} must come before /notification`);
    }
  });

  it('HAProxy strips the prefix and keeps tunnels longer than the ping interval', () => {
    const haproxy = withoutComments(readDeployFile('haproxy.cfg'));
    assert.match(haproxy, /http-request replace-path \^\/notification\/\?\(\.\*\)\$ \/\\1/);
    const tunnel = durationSeconds(directive(haproxy, /timeout tunnel\s+(\S+)/g), 'ms');
    assert.ok(tunnel > PING_INTERVAL_S, `timeout tunnel ${tunnel} s is not above the ping interval ${PING_INTERVAL_S} s`);
    const server = durationSeconds(directive(haproxy, /timeout server\s+(\S+)/g), 'ms');
    assert.ok(server > PING_INTERVAL_S, `timeout server ${server} s is not above the ping interval ${PING_INTERVAL_S} s`);
  });

  it('Caddy maps exactly /notification/ping and /notification onto the server with the prefix stripped', () => {
    const caddy = withoutComments(readDeployFile('Caddyfile'));
    assert.match(caddy, /handle \/notification\/ping \{\s*rewrite \* \/ping\s*reverse_proxy 127\.0\.0\.1:8083\s*\}/);
    assert.doesNotMatch(caddy, /handle_path|\/notification\/?\*/, 'a wildcard would forward /notification/metrics and /notification/status');
    assert.match(caddy, /handle \/notification \{\s*rewrite \* \/\s*reverse_proxy 127\.0\.0\.1:8083\s*\}/);
  });
});

describe('docs/deploy proxies: seahub\'s /notification/events reaches the server\'s /events, exactly that path', () => {
  it('nginx has an exact location for it', () => {
    assert.match(withoutComments(readDeployFile('nginx.conf')), /location = \/notification\/events \{\s*proxy_pass http:\/\/127\.0\.0\.1:8083\/events;/);
  });

  it('Apache maps it before /notification', () => {
    const apache = withoutComments(readDeployFile('apache.conf'));
    const events = apache.indexOf('ProxyPass        /notification/events http://127.0.0.1:8083/events\n');
    assert.ok(events >= 0 && events < apache.indexOf('ProxyPass        /notification ws://'), 'the /notification/events line, before /notification');
  });

  it('HAProxy sends that exact path to the backend, which strips the prefix', () => {
    assert.match(withoutComments(readDeployFile('haproxy.cfg')), /use_backend notification if .*\{ path \/notification\/events \}/);
  });

  it('Caddy rewrites it to /events', () => {
    assert.match(withoutComments(readDeployFile('Caddyfile')), /handle \/notification\/events \{\s*rewrite \* \/events\s*reverse_proxy 127\.0\.0\.1:8083\s*\}/);
  });
});

describe('docs/deploy/notification-server.service', () => {
  const service = parseUnit(readDeployFile('notification-server.service')).get('Service') ?? new Map<string, string[]>();
  const one = (key: string): string => {
    const values = service.get(key) ?? [];
    assert.equal(values.length, 1, `[Service] ${key}= should be set once, is set ${values.length} times`);
    return values[0]!;
  };

  it('runs the built server with a config dir and restarts it on failure, not on a configuration error', () => {
    assert.match(one('ExecStart'), /^\/\S*node \S*bin\/notification-server\.js -c \S+/);
    assert.equal(one('Restart'), 'on-failure');
    // serve() exits 2 on a ConfigError.
    assert.equal(one('RestartPreventExitStatus'), '2');
  });

  it('opens enough files for many clients', () => {
    const limit = Number(one('LimitNOFILE').split(':')[0]);
    assert.ok(limit >= 65_536, `LimitNOFILE=${limit} allows too few clients`);
  });

  it('stops with SIGTERM and waits beyond the drain window before SIGKILL', () => {
    assert.equal(one('KillSignal'), 'SIGTERM');
    const timeout = durationSeconds(one('TimeoutStopSec'), 's');
    assert.ok(timeout > STOP_SECONDS, `TimeoutStopSec=${timeout} s does not cover the drain (${STOP_SECONDS} s)`);
  });

  it('reloads with SIGHUP to the main process (rereads the configuration), never SIGUSR1, which only reopens the log file', () => {
    assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  });
});

describe('docs/deploy/notification-server.logrotate', () => {
  const logrotate = withoutComments(readDeployFile('notification-server.logrotate'));

  it('sends SIGUSR1 after rotating, so the server reopens its log file', () => {
    const script = /postrotate\n([\s\S]*?)\n\s*endscript/.exec(logrotate)?.[1] ?? '';
    assert.match(script, /SIGUSR1|-USR1/);
    assert.match(script, /notification-server/);
  });

  it('does not copytruncate, which would lose the lines written while copying', () => {
    assert.doesNotMatch(logrotate, /copytruncate/);
  });
});
