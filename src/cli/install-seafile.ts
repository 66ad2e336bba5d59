/** `notification-server install-seafile <dir>`: seafile.sh and seafile-monitor.sh then run this server unchanged. */
import { chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../config/config.js';
import { parseCommandLine } from '../config/flags.js';

const INSTALL_SEAFILE_USAGE = `Usage: notification-server install-seafile [--uninstall] <seafile install dir>

Puts this server in <dir>/seafile/bin/notification-server, where seafile.sh starts
the stock notification server (Seafile 10/11 binary packages), and keeps the stock
binary beside it as notification-server.stock. <dir> is the directory holding
seafile.sh (seafile-server-<version>, or the top dir holding seafile-server-latest).
Run it again after a Seafile upgrade, which brings a new stock binary.

Options:
      --uninstall   put the stock binary back
  -h, --help        show this help

Then: seafile.sh restart (or stop and start).
`;

/** The line that tells our wrapper from the stock binary. */
const MARKER = '# seafile-notification-server wrapper, installed by `notification-server install-seafile`';

export async function installSeafile(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, { uninstall: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help === true) {
    process.stdout.write(INSTALL_SEAFILE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new ConfigError('name one Seafile install dir (the one holding seafile.sh); see --help');
  const binDir = await findBinDir(resolve(positionals[0]!));
  const target = join(binDir, 'notification-server');
  const stock = join(binDir, 'notification-server.stock');
  try {
    const message = values.uninstall === true ? await removeWrapper(target, stock) : await putWrapper(target, stock);
    process.stdout.write(`${message}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`notification-server install-seafile: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

async function findBinDir(dir: string): Promise<string> {
  for (const candidate of [join(dir, 'seafile', 'bin'), join(dir, 'seafile-server-latest', 'seafile', 'bin')]) {
    if ((await stat(candidate).catch(() => null))?.isDirectory() === true) return candidate;
  }
  throw new ConfigError(`${dir} is not a Seafile install dir: it has no seafile/bin (nor seafile-server-latest/seafile/bin)`);
}

async function putWrapper(target: string, stock: string): Promise<string> {
  const current = await readIfExists(target);
  let kept = '';
  if (current !== null && !current.includes(MARKER)) {
    // A Seafile upgrade brings a new stock binary: that one is what a rollback wants.
    await rename(target, stock);
    kept = `; the stock binary is kept as ${stock}`;
  } else if (await readIfExists(stock) !== null) {
    kept = `; the stock binary stays in ${stock}`;
  }
  const temporary = `${target}.installing`;
  await writeFile(temporary, wrapperScript(), { mode: 0o755 });
  await chmod(temporary, 0o755);
  await rename(temporary, target);
  return `installed ${target}${kept}. Restart Seafile (seafile.sh restart) to run it.`;
}

async function removeWrapper(target: string, stock: string): Promise<string> {
  const current = await readIfExists(target);
  if (current !== null && !current.includes(MARKER)) return `${target} is not this server's: nothing to undo`;
  if (await readIfExists(stock) !== null) {
    await rename(stock, target);
    return `restored the stock binary ${target}. Restart Seafile (seafile.sh restart) to run it.`;
  }
  await rm(target, { force: true });
  return `removed ${target} (there was no stock binary to restore). Restart Seafile (seafile.sh restart).`;
}

/** A shell script, not a link: it pins the Node.js that installed it, whatever PATH seafile.sh sets. */
function wrapperScript(): string {
  const entry = join(dirname(dirname(dirname(dirname(fileURLToPath(import.meta.url))))), 'bin', 'notification-server.js');
  return [
    '#!/bin/sh',
    MARKER,
    '# Put the stock binary back with: notification-server install-seafile --uninstall <seafile install dir>',
    "# seafile.sh points LD_LIBRARY_PATH at Seafile's own libraries, which Node.js must not load.",
    'unset LD_LIBRARY_PATH',
    `exec ${shellQuote(process.execPath)} ${shellQuote(entry)} "$@"`,
    '',
  ].join('\n');
}

const shellQuote = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`;

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
