/**
 * `npm test`: provides MariaDB, PostgreSQL and Redis (from TEST_MYSQL_URL / TEST_POSTGRES_URL /
 * TEST_REDIS_URL, or throwaway servers), then runs `node --test` on the compiled tests.
 *
 *   node dist/test/support/run-tests.js [node --test flags] [test files or directories]
 *
 * Flags take the `--flag=value` form; anything else is a file or directory under dist/test.
 * Services are started only when a selected file lies outside dist/test/unit/. The container
 * image (TEST_CONTAINER_IMAGE) is built from the Dockerfile only when its test is selected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerBinaryMissingError, startMariaDb, startPostgres, type DatabaseInstance } from './databases.js';
import { startContainerImage } from './container-image.js';
import { isCi, type ServiceUrlName } from './env.js';
import { startRedis } from './redis.js';

const testRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const projectRoot = dirname(dirname(testRoot));
// One file at a time: timing-sensitive tests stay deterministic on a loaded 2-core machine.
const concurrency = Number(process.env['TEST_CONCURRENCY'] ?? 1);
// Node 20 applies it to each test file as a whole (its subprocess), not only to each test:
// a file's suites together must stay well below it.
const testTimeoutMs = 60_000;
// The container test builds an image: on a fresh machine that alone takes minutes.
const runTimeoutMs = Number(process.env['TEST_RUN_TIMEOUT_MS'] ?? 30 * 60_000);

interface Service {
  envName: ServiceUrlName;
  name: string;
  start(): Promise<DatabaseInstance>;
}

const services: Service[] = [
  { envName: 'TEST_MYSQL_URL', name: 'MariaDB', start: startMariaDb },
  { envName: 'TEST_POSTGRES_URL', name: 'PostgreSQL', start: startPostgres },
  { envName: 'TEST_REDIS_URL', name: 'Redis', start: () => startRedis() },
];
/** Built only when its test is selected: it takes minutes on a fresh machine, seconds after. */
const containerImage: Service = { envName: 'TEST_CONTAINER_IMAGE', name: 'container image', start: startContainerImage };
const CONTAINER_TEST = `integration${sep}container-image.test.js`;

const starting: Promise<DatabaseInstance | null>[] = [];
let child: ChildProcess | null = null;
let finishing = false;

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const nodeFlags = args.filter((arg) => arg.startsWith('-'));
  const files = selectTestFiles(args.filter((arg) => !arg.startsWith('-')));
  if (files.length === 0) {
    console.error(`no *.test.js files under ${relative(process.cwd(), testRoot) || '.'}: run \`npx tsc -p tsconfig.json\` first`);
    return 1;
  }

  const env: NodeJS.ProcessEnv = { ...process.env };
  if (files.some((file) => !isUnitTest(file))) {
    for (const service of services) starting.push(provide(service, env));
    if (files.some((file) => relative(testRoot, file) === CONTAINER_TEST)) starting.push(provide(containerImage, env));
    const provided = await Promise.allSettled(starting);
    const failure = provided.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined) {
      console.error(failure.reason instanceof Error ? failure.reason.message : String(failure.reason));
      return 1;
    }
  }
  if (finishing) return 1;

  child = spawn(
    process.execPath,
    ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${testTimeoutMs}`, ...nodeFlags, ...files],
    { stdio: 'inherit', env },
  );
  const running = child;
  const watchdog = setTimeout(() => {
    console.error(`tests still running after ${runTimeoutMs / 1000} s: stopping them`);
    running.kill('SIGKILL');
  }, runTimeoutMs);
  const code = await new Promise<number>((done) => {
    running.once('exit', (exitCode) => done(exitCode ?? 1));
    running.once('error', (error) => {
      console.error(`cannot run node --test: ${error.message}`);
      done(1);
    });
  });
  clearTimeout(watchdog);
  return code;
}

/** Puts the service's URL in `env`: the configured one, else a throwaway server's. */
async function provide(service: Service, env: NodeJS.ProcessEnv): Promise<DatabaseInstance | null> {
  const configured = process.env[service.envName];
  if (configured !== undefined && configured !== '') return null;
  const startedAt = performance.now();
  try {
    const instance = await service.start();
    env[service.envName] = instance.url;
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    console.error(`# ${service.name} for tests: ${instance.url} (started in ${seconds} s)`);
    return instance;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) {
      throw new Error(`cannot start a throwaway ${service.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (isCi()) {
      throw new Error(`${error.message} (or set ${service.envName}); CI=true requires every ${service.name} test to run`);
    }
    console.error(`# warning: ${error.message} or set ${service.envName}; ${service.name} tests will be skipped`);
    return null;
  }
}

function selectTestFiles(filters: string[]): string[] {
  if (filters.length === 0) return listTestFiles(testRoot);
  return filters.flatMap((filter) => {
    const path = resolve(filter);
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch {
      throw new Error(`no such test file or directory: ${filter}`);
    }
    return isDirectory ? listTestFiles(path) : [path];
  });
}

function listTestFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return listTestFiles(path);
      return entry.isFile() && entry.name.endsWith('.test.js') && hasSource(path) ? [path] : [];
    });
}

/** tsc never deletes outputs, so a removed or renamed test would otherwise still run. */
function hasSource(compiled: string): boolean {
  const source = join(projectRoot, relative(join(projectRoot, 'dist'), compiled)).replace(/\.js$/, '.ts');
  if (existsSync(source)) return true;
  console.error(`# skipping ${relative(process.cwd(), compiled)}: its source ${relative(process.cwd(), source)} is gone`);
  return false;
}

function isUnitTest(file: string): boolean {
  return relative(testRoot, file).startsWith(`unit${sep}`);
}

async function stopServices(): Promise<void> {
  const instances = await Promise.allSettled(starting);
  await Promise.all(
    instances.map((result) => (result.status === 'fulfilled' && result.value !== null ? result.value.stop() : Promise.resolve())),
  );
}

async function finish(code: number): Promise<never> {
  finishing = true;
  await stopServices();
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (finishing) return;
    // node --test's exit then runs finish(); before it started, nothing else will.
    if (child !== null && child.exitCode === null) {
      child.kill(signal);
      setTimeout(() => child?.kill('SIGKILL'), 5_000).unref();
    } else {
      void finish(signal === 'SIGINT' ? 130 : 143);
    }
  });
}

main().then(
  (code) => finish(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    return finish(1);
  },
);
