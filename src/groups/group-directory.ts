/** Answers "who is in group N" from the ccnet `GroupUser` table. */
export interface GroupDirectory {
  /** The user names of the group's members. Rejects with GroupLookupError when the database fails. */
  members(groupId: number): Promise<ReadonlySet<string>>;
  close(): Promise<void>;
}

export class GroupLookupError extends Error {
  override readonly name = 'GroupLookupError';
  constructor(
    readonly groupId: number,
    cause: unknown,
  ) {
    super(`group ${groupId} lookup failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** `GroupUser.user_name` as the driver returns it: a binary collation gives bytes instead of a string. */
export function userName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw new TypeError(`GroupUser.user_name is ${typeof value}, expected a string`);
}

/** How long a networked group database may take. */
export interface PoolOptions {
  /** Also bounds the wait for a free pool connection. */
  connectTimeoutMs: number;
  /** A hung database rejects the lookup instead of stalling event delivery. */
  queryTimeoutMs: number;
}
