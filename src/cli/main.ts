import { keygen } from './keygen.js';
import { serve } from './serve.js';

const COMMANDS = `Commands:
  (none)    run the server (see --help)
  keygen    print a new JWT private key for JWT_PRIVATE_KEY / jwt_private_key
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'keygen':
      return keygen();
    case 'serve':
      return serve(rest);
    case 'help':
      process.stdout.write(COMMANDS);
      return 0;
    default:
      return serve(argv);
  }
}
