/**
 * The stock server's log line, `[YYYY-MM-DD HH:MM:SS] [LEVEL] message` (local time, logrus's
 * level names), so that admins' greps keep working; pino's fields follow as `key=value`.
 */

/** pino's numeric levels to the names logrus prints (it has no trace here, and prints fatal as ERROR). */
function levelName(level: unknown): string {
  if (typeof level !== 'number') return 'INFO';
  if (level < 30) return 'DEBUG';
  if (level < 40) return 'INFO';
  if (level < 50) return 'WARNING';
  return 'ERROR';
}

const pad = (n: number): string => String(n).padStart(2, '0');

function localTime(epochMs: unknown): string {
  const date = new Date(typeof epochMs === 'number' ? epochMs : Date.now());
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A value as it reads in `key=value`: bare when it cannot be mistaken for two fields. */
function fieldValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (isErrorRecord(value)) return JSON.stringify(value.message);
  return JSON.stringify(value);
}

function isErrorRecord(value: unknown): value is { message: string } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string' && 'stack' in value;
}

/** One pino JSON line (with its newline) to one text line. A line that is not JSON is passed through. */
export function formatTextLine(jsonLine: string, prefix: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const { level, time, msg, ...fields } = record;
  let line = `${prefix}[${localTime(time)}] [${levelName(level)}] ${typeof msg === 'string' ? msg : ''}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) line += ` ${key}=${fieldValue(value)}`;
  }
  // One record is one line: a message with a newline must not forge a second entry.
  return `${line.replace(/[\r\n]+/g, ' ')}\n`;
}
