import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { GroupLookupError, userName, type GroupDirectory } from './group-directory.js';

/**
 * Reads ccnet `GroupUser` from `<top dir>/ccnet/GroupMgr/groupmgr.db`. Opened on the first lookup
 * and reopened after a failure, so a server started before seaf-server created it recovers by itself.
 */
export class SqliteGroupDirectory implements GroupDirectory {
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  #selectMembers: Database.Statement<[number], unknown> | null = null;

  /** `busyTimeoutMs`: a lookup waiting on seaf-server's write lock blocks the event loop, so it is short. */
  constructor(path: string, { busyTimeoutMs = 1_000 }: { busyTimeoutMs?: number } = {}) {
    this.#path = path;
    this.#busyTimeoutMs = busyTimeoutMs;
  }

  members(groupId: number): Promise<ReadonlySet<string>> {
    try {
      const names = this.#statement().all(groupId).map(userName);
      return Promise.resolve(new Set(names));
    } catch (error) {
      this.#closeDatabase();
      return Promise.reject(new GroupLookupError(groupId, error));
    }
  }

  close(): Promise<void> {
    this.#closeDatabase();
    return Promise.resolve();
  }

  #statement(): Database.Statement<[number], unknown> {
    if (this.#selectMembers !== null) return this.#selectMembers;
    // Checked first because SQLite's own message ("unable to open database file") names no path.
    if (!existsSync(this.#path)) {
      throw new Error(
        `SQLite group database ${this.#path} does not exist: it is ccnet/GroupMgr/groupmgr.db in the Seafile top directory, beside conf/`,
      );
    }
    // Read-only: seaf-server owns this file and writes to it concurrently.
    const db = new Database(this.#path, { readonly: true, fileMustExist: true, timeout: this.#busyTimeoutMs });
    try {
      this.#selectMembers = db.prepare<[number], unknown>('SELECT user_name FROM GroupUser WHERE group_id = ?').pluck();
    } catch (error) {
      db.close();
      throw new Error(`${this.#path} is not a ccnet group database: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    return this.#selectMembers;
  }

  #closeDatabase(): void {
    this.#selectMembers?.database.close();
    this.#selectMembers = null;
  }
}
