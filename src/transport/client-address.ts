/**
 * Which address a client connects from: the TCP peer, unless it is a trusted proxy
 * (`trusted_proxies`); then the rightmost `X-Forwarded-For` entry that is not itself a trusted
 * proxy (every hop appends, and only trusted hops can be believed) or else `X-Real-IP`. From any
 * other peer both headers are ignored: a client could write anything in them.
 */
import { BlockList, isIP } from 'node:net';

export interface ClientAddress {
  /** The client's IP address, IPv4 written plainly (never `::ffff:a.b.c.d`). */
  readonly address: string;
  /**
   * True when the peer is a trusted proxy that did not say whom it forwards for (no header, or
   * one that cannot be read): `address` is then the proxy's own and stands for many clients.
   */
  readonly unattributed: boolean;
}

/** `::ffff:10.0.0.1`, an IPv4 peer of a dual-stack socket, as `10.0.0.1`; other addresses lower-case. */
export function plainAddress(address: string): string {
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped === null ? lower : mapped[1]!;
}

/** One entry of X-Forwarded-For or X-Real-IP: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]` or `[v6]:port`; null when it is none of them. */
function forwardedAddress(entry: string): string | null {
  const text = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  const candidate = bracketed !== null ? bracketed[1]! : /^\d+\.\d+\.\d+\.\d+:\d+$/.test(text) ? text.slice(0, text.lastIndexOf(':')) : text;
  return isIP(candidate) === 0 ? null : plainAddress(candidate);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

export class TrustedProxies {
  readonly #blocks = new BlockList();
  readonly #empty: boolean;

  /** `entries`: IP addresses and CIDR blocks, as config's parseAddressList makes them. */
  constructor(entries: readonly string[]) {
    this.#empty = entries.length === 0;
    for (const entry of entries) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#blocks.addAddress(address, type);
      else this.#blocks.addSubnet(address, Number(prefix), type);
    }
  }

  trusts(address: string): boolean {
    if (this.#empty) return false;
    const plain = plainAddress(address);
    const family = isIP(plain);
    return family !== 0 && this.#blocks.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** The client behind a request that came from `peer` with these headers. */
  clientOf(peer: string | undefined, headers: Readonly<Record<string, string | string[] | undefined>>): ClientAddress {
    const direct = plainAddress(peer ?? 'unknown');
    if (!this.trusts(direct)) return { address: direct, unattributed: false };
    const forwardedFor = headerText(headers['x-forwarded-for']);
    if (forwardedFor !== undefined && forwardedFor.trim() !== '') {
      const hops = forwardedFor.split(',');
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = forwardedAddress(hops[i]!);
        // A hop a trusted proxy wrote but cannot be read: whom it stands for is unknown.
        if (hop === null) return { address: direct, unattributed: true };
        if (i === 0 || !this.trusts(hop)) return { address: hop, unattributed: false };
      }
    }
    const realIp = headerText(headers['x-real-ip']);
    if (realIp !== undefined && realIp.trim() !== '') {
      const address = forwardedAddress(realIp);
      if (address !== null) return { address, unattributed: false };
    }
    return { address: direct, unattributed: true };
  }
}
