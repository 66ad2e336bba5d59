import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliProcess, runCli } from '../support/cli-process.js';
import { closedLoopbackPort } from '../support/databases.js';
import { ServerProcess, subscriberToken, TEST_KEY } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO_A = '6f1e0c1a-4444-4b4b-9c9c-00000000000a';
const REPO_B = '6f1e0c1a-4444-4b4b-9c9c-00000000000b';
const REPO_C = '6f1e0c1a-4444-4b4b-9c9c-00000000000c';
const KEY_ENV = { JWT_PRIVATE_KEY: TEST_KEY };

const LISTENING = /listening at .* for \d+ librar/;

describe('notification-server publish and listen against a running server', () => {
  let server: ServerProcess;
  let dir: string;

  before(async () => {
    server = await ServerProcess.start();
    dir = await mkdtemp(join(tmpdir(), 'notif-test-cli-'));
  });
  after(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function subscribedClient(...repos: string[]): Promise<TestClient> {
    const client = await TestClient.connect(server.wsUrl);
    client.subscribe(repos.map((id) => ({ id, jwt_token: subscriberToken(id, 'alice@example.com') })));
    await client.roundTrip();
    return client;
  }

  it('publish signs with JWT_PRIVATE_KEY and the event reaches a subscriber byte for byte', async () => {
    const client = await subscribedClient(REPO_A);
    // Spacing, a big integer and an unknown field: forwarded exactly as written.
    const content = `{ "repo_id": "${REPO_A}", "commit_id":"c0ffee", "size": 12345678901234567890, "extra": {"a": [1, 2]} }`;
    const result = await runCli(['publish', '--url', server.url, 'repo-update', content], { env: KEY_ENV });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^200 OK\n/);
    await client.waitForCount(1);
    assert.deepEqual(client.raw, [`{"type":"repo-update","content":${content}}`]);
    client.close();
  });

  it('publish --repo reads the key and the server address from a Seafile config dir (-c)', async () => {
    const conf = await mkdtemp(join(dir, 'conf-'));
    await writeFile(
      join(conf, 'seafile.conf'),
      `[notification]\nenabled = true\nhost = 127.0.0.1\nport = ${server.port}\njwt_private_key = ${TEST_KEY}\n`,
    );
    const client = await subscribedClient(REPO_A);
    const result = await runCli(['publish', '-c', conf, '--repo', REPO_A, 'file-lock-changed']);
    assert.equal(result.code, 0, result.stderr);
    await client.waitForCount(1);
    assert.deepEqual(client.raw, [`{"type":"file-lock-changed","content":{"repo_id":"${REPO_A}"}}`]);
    client.close();
  });

  it('publish with a key that is not the server\'s is refused: exit 1, the 401 and a hint, nothing delivered', async () => {
    const client = await subscribedClient(REPO_A);
    const result = await runCli(['publish', '--url', server.url, '--key', 'not-the-server-key', '--repo', REPO_A, 'repo-update']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^401 /);
    assert.match(result.stderr, /refused the event with 401 \(is the key the server's\?\): publisher token signature does not match/);
    await client.roundTrip();
    assert.deepEqual(client.raw, []);
    client.close();
  });

  it('publish without any key says where a key comes from, exit 2', async () => {
    const result = await runCli(['publish', '--url', server.url, '--repo', REPO_A, 'repo-update'], { cwd: dir });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no JWT key: pass --key <key>, set JWT_PRIVATE_KEY, or give the Seafile config dir with -c <dir>/);
  });

  it('publish checks the event before sending it: bad JSON, not an object, no repo_id, a bad group, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['repo-update', `{"repo_id": "${REPO_A}"`], /the content is not valid JSON/],
      [['repo-update', `["${REPO_A}"]`], /the content must be a JSON object/],
      [['repo-update', '{"commit_id": "c"}'], /the server would refuse this event: missing "content\.repo_id"/],
      [['folder-perm-changed', `{"repo_id": "${REPO_A}", "user": "", "group": "7"}`], /content\.group must be an integer/],
      [['repo-update', '--repo', REPO_B, `{"repo_id": "${REPO_A}"}`], /--repo .* differs from the content's repo_id/],
      [[], /give the event type/],
    ];
    const client = await subscribedClient(REPO_A, REPO_B);
    const results = await Promise.all(cases.map(([args]) => runCli(['publish', '--url', server.url, ...args], { env: KEY_ENV })));
    for (const [index, [args, message]] of cases.entries()) {
      assert.equal(results[index]!.code, 2, `${args.join(' ')}: ${results[index]!.stderr}`);
      assert.match(results[index]!.stderr, message);
    }
    await client.roundTrip();
    assert.deepEqual(client.raw, [], 'nothing was sent');
    client.close();
  });

  it('publish to a server that is down says it cannot reach it, exit 1', async () => {
    const port = await closedLoopbackPort();
    const result = await runCli(['publish', '--url', `http://127.0.0.1:${port}`, '--repo', REPO_A, 'repo-update'], { env: KEY_ENV });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/events: .*ECONNREFUSED.*is the server running`));
  });

  it('listen prints the events of its libraries, one JSON line each, as another publisher sends them; SIGTERM exits 0', async () => {
    const listener = CliProcess.start(['listen', '--url', server.wsUrl, '--repo', REPO_A, '--repo', REPO_B, '--user', 'bob@example.com'], {
      env: KEY_ENV,
    });
    await listener.waitUntil(() => LISTENING.test(listener.stderr), 'the listening line');
    const sent = [
      { type: 'repo-update', content: { repo_id: REPO_A, commit_id: '1' } },
      { type: 'repo-update', content: { repo_id: REPO_C, commit_id: 'not followed' } },
      { type: 'file-lock-changed', content: { repo_id: REPO_B, path: '/x\ny.txt', change_event: 'locked', lock_user: 'carol@example.com' } },
      { type: 'repo-update', content: { repo_id: REPO_A, commit_id: '2' } },
    ];
    for (const event of sent) assert.equal(await server.publish(event.type, event.content), 200);
    await listener.waitUntil(() => listener.lines.length >= 3, 'three lines');
    const expected = [sent[0], sent[2], sent[3]].map((event) => JSON.stringify(event));
    assert.deepEqual(listener.lines, expected);
    const result = await listener.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
  });

  it('listen prints jwt-expired for a token the server refuses, and Ctrl-C exits 0', async () => {
    const expired = subscriberToken(REPO_A, 'bob@example.com', { exp: Math.floor(Date.now() / 1000) - 10 });
    const listener = CliProcess.start(['listen', '--url', server.wsUrl, '--repo', REPO_A, '--token', expired]);
    await listener.waitUntil(() => listener.lines.length >= 1, 'a line');
    assert.deepEqual(listener.lines, [`{"type":"jwt-expired","content":{"repo_id":"${REPO_A}"}}`]);
    const result = await listener.stop('SIGINT');
    assert.equal(result.code, 0, result.stderr);
  });

  it('listen without a token or user, or with tokens that do not pair with the libraries, exits 2 with the reason', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--repo', REPO_A], /give --token <jwt> for each --repo, or --user <name>/],
      [['--repo', REPO_A, '--repo', REPO_B, '--token', 'x'], /2 --repo but 1 --token/],
      [['--user', 'bob@example.com'], /give at least one --repo/],
      [['--repo', REPO_A, '--user', 'bob@example.com', '--url', 'ftp://127.0.0.1'], /use http:\/\/, https:\/\/, ws:\/\/ or wss:\/\//],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(['listen', '--url', server.wsUrl, ...args], { env: KEY_ENV })));
    for (const [index, [args, message]] of cases.entries()) {
      assert.equal(results[index]!.code, 2, `${args.join(' ')}: ${results[index]!.stderr}`);
      assert.match(results[index]!.stderr, message);
    }
  });

  it('listen to a server that is down exits 1 saying it cannot connect', async () => {
    const port = await closedLoopbackPort();
    const result = await runCli(['listen', '--url', `ws://127.0.0.1:${port}`, '--repo', REPO_A, '--user', 'bob'], { env: KEY_ENV });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`cannot connect to ws://127\\.0\\.0\\.1:${port}/: .*ECONNREFUSED`));
  });

  it('listen at a path with no WebSocket exits 1 with the status and a hint', async () => {
    const result = await runCli(['listen', '--url', `${server.url}/nothing-here`, '--repo', REPO_A, '--user', 'bob'], { env: KEY_ENV });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /answered 404 .*instead of a WebSocket upgrade: no WebSocket at this path/);
  });

  it('listen exits 1 when the server goes away (1001 on shutdown)', async () => {
    const own = await ServerProcess.start({ env: { NOTIFICATION_SERVER_DRAIN_SECONDS: '0' } });
    const listener = CliProcess.start(['listen', '--url', own.wsUrl, '--repo', REPO_A, '--user', 'bob'], { env: KEY_ENV });
    await listener.waitUntil(() => LISTENING.test(listener.stderr), 'the listening line');
    await own.stop();
    const result = await listener.exited;
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the server closed the connection: 1001/);
  });
});
