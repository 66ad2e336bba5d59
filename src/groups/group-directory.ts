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
