/**
 * Throwaway MariaDB and PostgreSQL servers for tests: private data directory, free loopback
 * port, gone on stop(). Plus helpers that write ccnet `GroupUser` rows.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import type { GroupDatabaseConfig } from '../../src/config/config.js';
import { locate } from './binaries.js';

export interface DatabaseInstance {
  /** `mysql://root@127.0.0.1:PORT/` or `postgres://postgres@127.0.0.1:PORT/postgres`. */
  readonly url: string;
  /** Stops the server and deletes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** The server binaries are not installed; `debianPackage` provides them. */
export class ServerBinaryMissingError extends Error {
  override readonly name = 'ServerBinaryMissingError';
  constructor(
    readonly binary: string,
    readonly debianPackage: string,
  ) {
    super(`${binary} not found: install the Debian package ${debianPackage}`);
  }
}

/** Group id → user names; a group with an empty list exists but has no members. */
export type GroupMembers = Record<number, readonly string[]>;

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;

export async function startMariaDb(): Promise<DatabaseInstance> {
  const server = findBinary(['mariadbd', 'mysqld'], [], 'mariadb-server');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-mariadb-'));
  try {
    const dataDir = join(dir, 'data');
    // No mariadb-install-db: it costs seconds, and without grant tables the system schema is not needed.
    mkdirSync(dataDir);
    return await startServer({
      name: 'MariaDB',
      dir,
      stopSignal: 'SIGTERM',
      command: (port) => [
        server,
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--socket=${join(dir, 'mysqld.sock')}`,
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        `--tmpdir=${dir}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        // Tests connect as root without a password; nothing but loopback can reach it.
        '--skip-grant-tables',
        '--skip-name-resolve',
        '--skip-log-bin',
        '--innodb-buffer-pool-size=16M',
        '--innodb-log-file-size=8M',
        '--innodb-flush-log-at-trx-commit=0',
        '--innodb-doublewrite=0',
        '--character-set-server=utf8mb4',
        ...(process.getuid?.() === 0 ? ['--user=root'] : []),
      ],
      url: (port) => `mysql://root@127.0.0.1:${port}/`,
      probe: async (port) => {
        const connection = await createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1_000 });
        await connection.end();
      },
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

export async function startPostgres(): Promise<DatabaseInstance> {
  const binDirs = postgresBinDirs();
  const initdb = findBinary(['initdb'], binDirs, 'postgresql');
  const server = findBinary(['postgres'], binDirs, 'postgresql');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-postgres-'));
  try {
    // PostgreSQL refuses to run as root: hand the directory to the postgres user and run as it.
    const owner = process.getuid?.() === 0 ? postgresUser() : null;
    if (owner !== null) chownSync(dir, owner.uid, owner.gid);
    const asOwner = (argv: string[]): string[] =>
      owner === null ? argv : [findBinary(['setpriv'], [], 'util-linux'), `--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', '--', ...argv];
    const dataDir = join(dir, 'data');
    const [initCommand, ...initArgs] = asOwner([
      initdb,
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    await runLogged(initCommand ?? initdb, initArgs, join(dir, 'initdb.log'));
    return await startServer({
      name: 'PostgreSQL',
      dir,
      // SIGINT is the fast shutdown: it does not wait for clients to disconnect.
      stopSignal: 'SIGINT',
      command: (port) =>
        asOwner([
          server,
          '-D',
          dataDir,
          '-k',
          dir,
          '-p',
          String(port),
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'fsync=off',
          '-c',
          'synchronous_commit=off',
          '-c',
          'full_page_writes=off',
          '-c',
          'shared_buffers=16MB',
          '-c',
          'max_connections=40',
        ]),
      url: (port) => `postgres://postgres@127.0.0.1:${port}/postgres`,
      probe: async (port) => {
        const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1_000 });
        client.on('error', () => {});
        try {
          await client.connect();
        } finally {
          await client.end().catch(() => {});
        }
      },
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Writes ccnet `GroupUser` rows, replacing earlier rows of the same groups. MySQL: into database
 * `database` (created if needed); PostgreSQL: into the URL's database. Returns the URL of that database.
 */
export async function seedGroups(url: string, groups: GroupMembers, database = 'ccnet_db'): Promise<string> {
  const config = groupDatabaseFromUrl(url, { requireDatabase: false });
  const rows = groupRows(groups);
  if (config.kind === 'mysql') {
    const connection = await createConnection({ host: config.host, port: config.port, user: config.user, password: config.password });
    try {
      await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4`);
      await connection.query(`USE \`${database}\``);
      // ccnet's own DDL for MySQL.
      await connection.query(
        'CREATE TABLE IF NOT EXISTS `GroupUser` (`id` BIGINT PRIMARY KEY AUTO_INCREMENT, `group_id` BIGINT, ' +
          '`user_name` VARCHAR(255), `is_staff` tinyint, UNIQUE INDEX (`group_id`, `user_name`), INDEX (`user_name`)) ENGINE=INNODB',
      );
      await connection.beginTransaction();
      for (const groupId of Object.keys(groups)) await connection.query('DELETE FROM GroupUser WHERE group_id = ?', [Number(groupId)]);
      for (const row of rows) await connection.query('INSERT INTO GroupUser (group_id, user_name, is_staff) VALUES (?, ?, 0)', row);
      await connection.commit();
    } finally {
      await connection.end();
    }
    const target = new URL(url);
    target.pathname = `/${database}`;
    return target.href;
  }
  if (config.kind === 'postgres') {
    const client = new pg.Client({ host: config.host, port: config.port, user: config.user, password: config.password, database: config.database });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query('BEGIN');
      // Two test files seeding at once would race on CREATE TABLE IF NOT EXISTS.
      await client.query('SELECT pg_advisory_xact_lock(7314)');
      // Unquoted like ccnet's DDL, so the table is really named `groupuser`.
      await client.query('CREATE TABLE IF NOT EXISTS GroupUser (group_id INTEGER, user_name VARCHAR(255), is_staff SMALLINT, UNIQUE (group_id, user_name))');
      for (const groupId of Object.keys(groups)) await client.query('DELETE FROM GroupUser WHERE group_id = $1', [Number(groupId)]);
      for (const row of rows) await client.query('INSERT INTO GroupUser (group_id, user_name, is_staff) VALUES ($1, $2, 0)', row);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    return url;
  }
  throw new Error(`seedGroups takes a mysql:// or postgres:// URL, got ${url}`);
}

/** Creates (or updates) a ccnet `groupmgr.db` at `path`, with its parent directories. */
export function writeSqliteGroups(path: string, groups: GroupMembers): void {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    // ccnet's own DDL for SQLite.
    db.exec('CREATE TABLE IF NOT EXISTS GroupUser (group_id INTEGER, user_name VARCHAR(255), is_staff tinyint)');
    db.exec('CREATE UNIQUE INDEX IF NOT EXISTS groupid_username_indx on GroupUser (group_id, user_name)');
    db.exec('CREATE INDEX IF NOT EXISTS username_indx on GroupUser (user_name)');
    const remove = db.prepare('DELETE FROM GroupUser WHERE group_id = ?');
    const insert = db.prepare('INSERT INTO GroupUser (group_id, user_name, is_staff) VALUES (?, ?, 0)');
    db.transaction(() => {
      for (const groupId of Object.keys(groups)) remove.run(Number(groupId));
      for (const row of groupRows(groups)) insert.run(...row);
    })();
  } finally {
    db.close();
  }
}

/** The group database configuration a `mysql://` or `postgres://` test URL describes. */
export function groupDatabaseFromUrl(url: string, options: { requireDatabase?: boolean } = {}): GroupDatabaseConfig {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database === '' && options.requireDatabase !== false) throw new Error(`${url} names no database`);
  const common = {
    host: parsed.hostname,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database,
    socketPath: null,
  };
  switch (parsed.protocol) {
    case 'mysql:':
    case 'mariadb:':
      return { kind: 'mysql', ...common, port: Number(parsed.port || 3306), ssl: false };
    case 'postgres:':
    case 'postgresql:':
      return { kind: 'postgres', ...common, port: Number(parsed.port || 5432) };
    default:
      throw new Error(`unsupported database URL ${url}: use mysql:// or postgres://`);
  }
}

/** A loopback port nobody listens on (for "database unreachable" tests). */
export function closedLoopbackPort(): Promise<number> {
  return freeLoopbackPort();
}

function groupRows(groups: GroupMembers): [number, string][] {
  return Object.entries(groups).flatMap(([groupId, users]) => users.map((user): [number, string] => [Number(groupId), user]));
}

interface ServerSpec {
  name: string;
  dir: string;
  stopSignal: NodeJS.Signals;
  command(port: number): string[];
  url(port: number): string;
  /** Resolves once the server answers on `port`. */
  probe(port: number): Promise<void>;
}

/** Starts the server, retrying on a new port if another process took the free one meanwhile. */
async function startServer(spec: ServerSpec): Promise<DatabaseInstance> {
  const logPath = join(spec.dir, 'server.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    const [command, ...args] = withParentDeathSignal(spec.command(port), spec.stopSignal);
    const log = openSync(logPath, 'a');
    const child = spawn(command ?? '', args, { stdio: ['ignore', log, log] });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => {});
    const ready = await waitUntilReady(spec, port, exited);
    if (ready) {
      let stopping: Promise<void> | undefined;
      return {
        url: spec.url(port),
        stop: () => (stopping ??= stopProcess(child, exited, spec.stopSignal).finally(() => rm(spec.dir, { recursive: true, force: true }))),
      };
    }
    await stopProcess(child, exited, spec.stopSignal);
    if (attempt >= START_ATTEMPTS || child.exitCode === null) {
      const reason = child.exitCode === null ? `did not accept connections within ${READY_TIMEOUT_MS / 1000} s` : `exited with code ${child.exitCode}`;
      throw new Error(`${spec.name} ${reason}; its log ends:\n${logTail(logPath)}`);
    }
  }
}

async function waitUntilReady(spec: ServerSpec, port: number, exited: Promise<void>): Promise<boolean> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!hasExited && Date.now() < deadline) {
    try {
      await spec.probe(port);
      return true;
    } catch {
      await sleep(50);
    }
  }
  return false;
}

export async function stopProcess(child: ChildProcess, exited: Promise<void>, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Also stops the server when the test runner dies without calling stop(). */
export function withParentDeathSignal(argv: string[], signal: NodeJS.Signals): string[] {
  const setpriv = locate('setpriv', []);
  if (setpriv === null) return argv;
  // An outer setpriv (the user switch) would clear the signal when the ids change: set it innermost.
  const separator = argv.indexOf('--');
  if (argv[0] === setpriv && separator > 0) {
    return [...argv.slice(0, separator), `--pdeathsig=${signal}`, ...argv.slice(separator)];
  }
  return [setpriv, `--pdeathsig=${signal}`, '--', ...argv];
}

export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Asynchronous, so that another server can start meanwhile. */
async function runLogged(command: string, args: string[], logPath: string): Promise<void> {
  const output = await new Promise<string>((resolve, reject) => {
    execFile(command, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const text = `${stdout}${stderr}`;
      if (error === null) resolve(text);
      else reject(new Error(`${command} failed (${error.message.split('\n')[0]}); its output ends:\n${text.split('\n').slice(-20).join('\n')}`));
    });
  });
  await writeFile(logPath, output);
}

export function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

export function findBinary(names: string[], extraDirs: string[], debianPackage: string): string {
  for (const name of names) {
    const found = locate(name, extraDirs);
    if (found !== null) return found;
  }
  throw new ServerBinaryMissingError(names.join(' / '), debianPackage);
}

/** Debian's /usr/lib/postgresql/<major>/bin, newest first. */
function postgresBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((version) => /^\d+$/.test(version))
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => join(root, version, 'bin'));
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new ServerBinaryMissingError('user postgres (PostgreSQL will not run as root)', 'postgresql');
  }
}
