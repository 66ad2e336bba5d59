import { ConfigError } from '../config/setting.js';

// Each command loads only its own modules: publish and listen start without the server's
// database drivers (most of a second on a slow machine).
const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  keygen: async () => (await import('./keygen.js')).keygen(),
  publish: async (argv) => (await import('./publish.js')).publish(argv),
  listen: async (argv) => (await import('./listen.js')).listen(argv),
  check: async (argv) => (await import('./check.js')).check(argv),
  'install-seafile': async (argv) => (await import('./install-seafile.js')).installSeafile(argv),
  serve: async (argv) => (await import('./serve.js')).serve(argv),
  // The serve usage lists the commands too.
  help: async () => (await import('./serve.js')).serve(['--help']),
};

/** A command throws a ConfigError for what the user must fix (an option, a file): one line on stderr, exit 2. */
export async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command]! : null;
  try {
    // Without a command, the arguments are the server's own.
    return await (run === null ? COMMANDS['serve']!(argv) : run(rest));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const named = run !== null && command !== 'serve';
    process.stderr.write(`notification-server${named ? ` ${command}` : ''}: ${error.message}\n`);
    return 2;
  }
}
