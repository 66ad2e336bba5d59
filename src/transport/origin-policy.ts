/**
 * Which `Origin` headers an `allowed_origins` setting admits to the WebSocket. An Origin
 * policy only matters against browsers (any other program can send whatever it likes), so
 * everything a browser never sends is admitted: no Origin at all, and the desktop client's
 * bare host name. The desktop client's other form, `http://<host>` without the port, is
 * admitted for this server's own host names: the request's Host and the allowed origins' hosts.
 */

/** A host name or IP literal with nothing else: what the desktop client sends, never a browser. */
const BARE_HOST = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])$/;

function hostOfHeader(host: string | undefined): string | null {
  if (host === undefined || host === '') return null;
  const match = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(host.trim());
  return match === null ? null : match[1]!.toLowerCase();
}

export class OriginPolicy {
  readonly #origins: ReadonlySet<string>;
  readonly #hosts: ReadonlySet<string>;

  /** `allowed`: normalized origins (`https://host[:port]`), as config's parseOriginList makes them. */
  constructor(allowed: readonly string[]) {
    this.#origins = new Set(allowed);
    this.#hosts = new Set(allowed.map((origin) => new URL(origin).hostname));
  }

  admits(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined || origin === '') return true;
    // Opaque origins (sandboxed frames, file: pages) are sent as "null": that is a browser.
    if (origin.toLowerCase() !== 'null' && BARE_HOST.test(origin)) return true;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    if (this.#origins.has(url.origin)) return true;
    if (url.protocol === 'http:' && url.port === '' && origin.toLowerCase() === `http://${url.hostname}`) {
      return url.hostname === hostOfHeader(host) || this.#hosts.has(url.hostname);
    }
    return false;
  }
}
