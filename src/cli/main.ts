import { ConfigError } from '../config/setting.js';

export const COMMANDS = `Commands:
  (none)    run the server (see --help)
  keygen    print a new JWT private key for JWT_PRIVATE_KEY / jwt_private_key
  publish   send one event to a server, as seaf-server does (see publish --help)
  listen    follow libraries and print every event as a JSON line (see listen --help)
  check     check a set-up: group database, proxy, open-files limit (see check --help)
  install-seafile <dir>
            put this server where seafile.sh (Seafile 10/11) starts the stock one
            (see install-seafile --help)
`;

/** A command throws a ConfigError for what the user must fix (an option, a file): one line on stderr, exit 2. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    return await run(command, rest, argv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const named = command === 'publish' || command === 'listen' || command === 'check' || command === 'install-seafile';
    process.stderr.write(`notification-server${named ? ` ${command}` : ''}: ${error.message}\n`);
    return 2;
  }
}

// Each command loads only its own modules: publish and listen start without the server's
// database drivers (most of a second on a slow machine).
async function run(command: string | undefined, rest: string[], argv: string[]): Promise<number> {
  switch (command) {
    case 'keygen':
      return (await import('./keygen.js')).keygen();
    case 'publish':
      return (await import('./publish.js')).publish(rest);
    case 'listen':
      return (await import('./listen.js')).listen(rest);
    case 'check':
      return (await import('./check.js')).check(rest);
    case 'install-seafile':
      return (await import('./install-seafile.js')).installSeafile(rest);
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case 'help':
      process.stdout.write(COMMANDS);
      return 0;
    default:
      return (await import('./serve.js')).serve(argv);
  }
}
