/**
 * Throwaway MariaDB and PostgreSQL servers for tests: private data directory, free loopback
 * port, gone on stop(). A fault test may halt one and start it again on the same port with
 * the same data, or freeze it, as an admin's database would go away and come back. Plus
 * helpers that write ccnet `GroupUser` rows.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { isCi } from './env.js';
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

/** A database server a test started for itself, which it may take away and bring back. */
export interface ThrowawayDatabase extends DatabaseInstance {
  readonly port: number;
  /** Shuts the server down as an admin would (MariaDB: SIGTERM, PostgreSQL: fast shutdown); its data stays. */
  halt(): Promise<void>;
  /** Starts it again on the same port with the same data, after halt(). */
  restart(): Promise<void>;
  /**
   * SIGSTOP to the server and every process it started (PostgreSQL's backends): connections
   * stay open and new ones are accepted by the kernel, but nothing answers, as with a hung host.
   */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
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

export async function startMariaDb(): Promise<ThrowawayDatabase> {
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

export async function startPostgres(): Promise<ThrowawayDatabase> {
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

/**
 * Why tests that start their own MariaDB or PostgreSQL must be skipped here, or null when they
 * can run. Under CI=true a missing server is a failure, never a skip.
 */
export function databaseSkipReason(kind: 'mariadb' | 'postgres'): string | null {
  try {
    if (kind === 'mariadb') findBinary(['mariadbd', 'mysqld'], [], 'mariadb-server');
    else {
      findBinary(['initdb'], postgresBinDirs(), 'postgresql');
      findBinary(['postgres'], postgresBinDirs(), 'postgresql');
      if (process.getuid?.() === 0) postgresUser();
    }
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every database test to run`);
    return error.message;
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
async function startServer(spec: ServerSpec): Promise<ThrowawayDatabase> {
  const logPath = join(spec.dir, 'server.log');
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const launch = async (port: number): Promise<boolean> => {
    const [command, ...args] = withParentDeathSignal(spec.command(port), spec.stopSignal);
    const log = openSync(logPath, 'a');
    const started = spawn(command ?? '', args, { stdio: ['ignore', log, log] });
    closeSync(log);
    child = started;
    exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
    started.once('error', () => {});
    if (await waitUntilReady(spec, port, exited)) return true;
    await stopProcess(started, exited, spec.stopSignal);
    return false;
  };
  const current = (): ChildProcess => child!;
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    if (await launch(port)) {
      let stopping: Promise<void> | undefined;
      const signalAll = (signal: NodeJS.Signals): void => {
        for (const pid of processTree(current().pid)) {
          try {
            process.kill(pid, signal);
          } catch {
            // It exited meanwhile.
          }
        }
      };
      return {
        url: spec.url(port),
        port,
        halt: () => stopProcess(current(), exited, spec.stopSignal),
        restart: async () => {
          await stopProcess(current(), exited, spec.stopSignal);
          if (!(await launch(port))) throw new Error(`${spec.name} did not start again on port ${port}; its log ends:\n${logTail(logPath)}`);
        },
        freeze: () => signalAll('SIGSTOP'),
        thaw: () => signalAll('SIGCONT'),
        stop: () =>
          (stopping ??= Promise.resolve(signalAll('SIGCONT'))
            .then(() => stopProcess(current(), exited, spec.stopSignal))
            .finally(() => rm(spec.dir, { recursive: true, force: true }))),
      };
    }
    const failed = current();
    if (attempt >= START_ATTEMPTS || failed.exitCode === null) {
      const reason = failed.exitCode === null ? `did not accept connections within ${READY_TIMEOUT_MS / 1000} s` : `exited with code ${failed.exitCode}`;
      throw new Error(`${spec.name} ${reason}; its log ends:\n${logTail(logPath)}`);
    }
  }
}

/** `pid` and every process below it, from /proc (PostgreSQL runs a process per connection). */
function processTree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name is in parentheses and may hold blanks: the parent pid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // It exited while we looked.
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    found.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return found;
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
