import type { IncomingMessage } from 'node:http';

/**
 * Collects a request body of at most `maxBytes`: a larger declared Content-Length, or a body
 * that grows past it, calls `tooLarge` once instead (the rest is read and dropped).
 */
export function readBody(request: IncomingMessage, maxBytes: number, handlers: { body(body: Buffer): void; tooLarge(): void }): void {
  if (Number(request.headers['content-length'] ?? 0) > maxBytes) {
    handlers.tooLarge();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  request.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > maxBytes) {
      refused = true;
      handlers.tooLarge();
      return;
    }
    chunks.push(chunk);
  });
  request.on('end', () => {
    if (!refused) handlers.body(Buffer.concat(chunks, size));
  });
}
