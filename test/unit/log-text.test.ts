import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatTextLine } from '../../src/log-text.js';
import { createLogOutput } from '../../src/log.js';

const STOCK_LINE = /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] \[(DEBUG|INFO|WARNING|ERROR)\] /;

describe('text log lines, as the stock server writes them', () => {
  const scratch = mkdtemp(join(tmpdir(), 'log-text-'));
  after(async () => rm(await scratch, { recursive: true, force: true }));

  it('a record reads [YYYY-MM-DD HH:MM:SS] [LEVEL] message, in local time, then its fields', () => {
    const at = new Date(2026, 0, 2, 3, 4, 5).getTime();
    const line = formatTextLine(`${JSON.stringify({ level: 30, time: at, msg: 'notification server listening on 0.0.0.0:8083', port: 8083, key: 'JWT_PRIVATE_KEY' })}\n`, '');
    assert.equal(line, '[2026-01-02 03:04:05] [INFO] notification server listening on 0.0.0.0:8083 port=8083 key=JWT_PRIVATE_KEY\n');
  });

  it('levels carry logrus names: DEBUG, INFO, WARNING, ERROR (fatal too)', () => {
    const names = [20, 30, 40, 50, 60].map((level) => /\] \[(\w+)\]/.exec(formatTextLine(JSON.stringify({ level, time: 0, msg: 'm' }), ''))![1]);
    assert.deepEqual(names, ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'ERROR']);
  });

  it('values with blanks, quotes or = are quoted, objects are JSON, errors show their message', () => {
    const line = formatTextLine(
      JSON.stringify({ level: 50, time: 0, msg: 'cannot start', reason: 'port in use', list: [1, 2], err: { type: 'Error', message: 'listen EADDRINUSE', stack: 'Error: ...' } }),
      '',
    );
    assert.match(line, / reason="port in use" list=\[1,2\] err="listen EADDRINUSE"\n$/);
  });

  it('a message with a newline stays one line, so it cannot forge an entry', () => {
    const line = formatTextLine(JSON.stringify({ level: 30, time: 0, msg: 'a\n[2026-01-01 00:00:00] [ERROR] forged' }), '');
    assert.equal(line.split('\n').length, 2);
  });

  it('standard output names the server first, as the stock server does there', () => {
    assert.match(formatTextLine(JSON.stringify({ level: 30, time: 0, msg: 'm' }), '[notification-server] '), /^\[notification-server\] \[/);
  });

  it('a log file gets text by default, json when chosen', async () => {
    const dir = await scratch;
    for (const [format, file] of [[null, join(dir, 'default.log')], ['json', join(dir, 'json.log')]] as const) {
      const output = createLogOutput('info', file, format);
      output.logger.info({ port: 8083 }, 'listening');
      output.logger.child({ worker: 2 }).warn('slow');
      await new Promise<void>((resolve) => setTimeout(resolve, 50));
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 2);
      if (format === null) {
        assert.match(lines[0]!, STOCK_LINE);
        assert.match(lines[0]!, /\[INFO\] listening port=8083$/);
        assert.match(lines[1]!, /\[WARNING\] slow worker=2$/);
      } else {
        assert.deepEqual(lines.map((line) => (JSON.parse(line) as { msg: string }).msg), ['listening', 'slow']);
      }
    }
  });
});
