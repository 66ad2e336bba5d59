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
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
    else if (size - chunk.length <= maxBytes) handlers.tooLarge(); // the chunk that crossed the limit
  });
  request.on('end', () => {
    if (size <= maxBytes) handlers.body(Buffer.concat(chunks, size));
  });
}
