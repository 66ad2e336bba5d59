/** `npm run demo [-- --port 8080 --server-port 8083]`: see demo-server.ts. */
import { parseArgs } from 'node:util';
import { startDemo } from './demo-server.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' }, 'server-port': { type: 'string', default: '8083' } } });
const demo = await startDemo({ pagePort: Number(values.port), serverPort: Number(values['server-port']), logLevel: 'info' });
process.stdout.write(
  `\nnotification server: ${demo.serverUrl}\n` +
    `demo page:           ${demo.pageUrl}\n` +
    `without WebSocket:   ${demo.pageUrl}?no-websocket  (through a proxy that refuses upgrades: the client falls back to SSE)\n\n` +
    `Open the page in two windows and lock a file in one. Ctrl-C stops.\n`,
);
const stop = () => void demo.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
