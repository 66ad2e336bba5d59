// The demo page: the notification client, loaded unbundled from the demo server, keeps the
// file list's lock icons live and shows a banner when the library changes.
import { NotificationClient } from '/client/index.js';

const params = new URLSearchParams(location.search);
const config = await (await fetch('/demo/config')).json();
// ?no-websocket: through the demo's proxy that refuses WebSocket upgrades.
const url = params.has('no-websocket') ? `${location.origin}/no-ws/notification` : config.serverUrl;

const stateBadge = document.getElementById('state');
const banner = document.getElementById('banner');
const list = document.getElementById('files');
const log = document.getElementById('log');

function note(text) {
  log.textContent = `${new Date().toLocaleTimeString()} ${text}\n${log.textContent}`.slice(0, 4000);
}

function showBanner(text) {
  banner.textContent = text;
  banner.classList.add('shown');
}

// A padlock drawn inline: no icon font, no emoji font needed.
const LOCK_ICON =
  '<svg width="14" height="14" viewBox="0 0 24 24" role="img" aria-label="locked"><path fill="currentColor" d="M6 10V7a6 6 0 0 1 12 0v3h1a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V11a1 1 0 0 1 1-1h1zm2 0h8V7a4 4 0 0 0-8 0v3z"/></svg>';

function rowOf(path) {
  return [...list.children].find((row) => row.dataset.path === path);
}

function showLock(path, lockUser) {
  const row = rowOf(path);
  if (row === undefined) return;
  row.dataset.locked = String(lockUser !== null);
  const lock = row.querySelector('.lock');
  lock.replaceChildren();
  if (lockUser !== null) {
    lock.insertAdjacentHTML('beforeend', LOCK_ICON);
    lock.append(` ${lockUser}`);
  }
  row.querySelector('button').textContent = lockUser === null ? 'Lock' : 'Unlock';
}

/** The library's state as seahub would list it: read at start and whenever events were missed. */
async function loadFiles() {
  const files = await (await fetch('/demo/files', { cache: 'no-store' })).json();
  list.replaceChildren(
    ...files.map((file) => {
      const row = document.createElement('li');
      row.dataset.path = file.path;
      row.innerHTML = '<span class="name"></span><span class="lock"></span><button type="button"></button>';
      row.querySelector('.name').textContent = file.path;
      row.querySelector('button').addEventListener('click', async () => {
        const answer = await (await fetch(`/demo/lock?path=${encodeURIComponent(file.path)}`, { method: 'POST' })).json();
        if (!answer.published) note(`${answer.change_event} ${file.path}, but the notification server is down: the page catches up when it is back`);
      });
      return row;
    }),
  );
  for (const file of files) showLock(file.path, file.lockUser);
}

await loadFiles();
document.getElementById('commit').addEventListener('click', async () => {
  const answer = await (await fetch('/demo/commit', { method: 'POST' })).json();
  if (!answer.published) note('committed, but the notification server is down');
});

let listedSinceSubscribed = false;
const client = new NotificationClient({
  url,
  backoff: { initialMs: 250, maxMs: 4000 },
  tokenProvider: async (repoId) => (await (await fetch(`/demo/token?repo=${encodeURIComponent(repoId)}`)).json()).token,
});
client.on('state', (state) => {
  stateBadge.dataset.state = state;
  stateBadge.textContent = `${state} · ${client.transport}`;
  note(`connection ${state} (${client.transport})`);
});
client.on('fileLockChanged', (event) => {
  showLock(event.path, event.change_event === 'locked' ? event.lock_user : null);
  note(`${event.path} ${event.change_event} by ${event.lock_user}`);
});
client.on('repoUpdate', (event) => {
  showBanner(`Library updated (commit ${event.commit_id.slice(0, 8)}): reload to see the changes.`);
  note(`repo-update ${event.commit_id.slice(0, 8)}`);
});
client.on('resync', async (event) => {
  // The server could not replay what happened while we were away (it restarted): re-read the state.
  note(`resync (${event.reason}): reloading the file list`);
  await loadFiles();
  showBanner('Reconnected: the file list was reloaded.');
});
client.on('event', (message) => {
  // Read the list once the subscription stands, so that no lock change falls between the two.
  if (message.type === 'subscribed' && !listedSinceSubscribed) {
    listedSinceSubscribed = true;
    // Marks the page live for whoever watches it (the Chromium test): the subscription stands.
    void loadFiles().then(() => (list.dataset.live = 'true'));
  }
});
client.on('error', (error) => note(error.message));
client.subscribe(config.repoId);
globalThis.notificationClient = client;
