/** CPU time and resident memory of another process, read from /proc (Linux only). */
import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build. */
const TICKS_PER_SECOND = 100;

export interface ProcessUsage {
  /** User + system CPU seconds since the process started. */
  cpuSeconds: number;
  /** Resident set size in bytes. */
  rssBytes: number;
  /** Open file descriptors. */
  openFiles: number;
}

export function readProcessUsage(pid: number): ProcessUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  let openFiles = NaN;
  try {
    openFiles = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    // Not ours to read (another user); the figure is optional.
  }
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: rssKiB * 1024, openFiles };
}

/**
 * How long the process's main thread (where its JavaScript runs) has waited, runnable, for a
 * core, in seconds (/proc/<pid>/schedstat, second field, ns): on a shared machine the part of a
 * latency spent queued behind other processes.
 */
export function readRunQueueWait(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return NaN;
  }
}
