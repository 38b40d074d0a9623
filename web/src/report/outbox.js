// Reports made without signal, kept on the phone until they can be sent: each is the
// form's fields and its photos (as Blobs) in IndexedDB, which keeps binary data and
// outlives the page. Both the page and its service worker send them: the page when the
// browser says it is online, when it is opened, and every half minute while some wait;
// the service worker when the browser hands it a background sync, which it does once
// the connection returns even if the page is closed. One sender at a time (a Web Lock),
// so that no report is sent twice. A report taken by the server moves, in one
// transaction, from the outbox to the sent list, where the page finds it to remember
// its tracking link.

const DB = 'dothi-reports';
const OUTBOX = 'outbox';
const SENT = 'sent';
/** The background sync's tag, and the Web Lock's name. */
export const SYNC_TAG = 'dothi-report-outbox';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      const names = req.result.objectStoreNames;
      if (!names.contains(OUTBOX)) req.result.createObjectStore(OUTBOX, { keyPath: 'key', autoIncrement: true });
      if (!names.contains(SENT)) req.result.createObjectStore(SENT, { keyPath: 'key', autoIncrement: true });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Runs `work` on the named stores in one transaction; resolves with what it returns
 * (a request's result, once the transaction is complete). */
async function run(stores, mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(stores, mode);
      const req = work(tx);
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keeps a report: `fields` as [name, value] pairs, `photos` as [{name, type, blob}]. */
export const keep = (fields, photos) =>
  run(OUTBOX, 'readwrite', (tx) => tx.objectStore(OUTBOX).add({ madeAt: new Date().toISOString(), fields, photos, error: null }));

/** Everything waiting, oldest first. */
export const waiting = () => run(OUTBOX, 'readonly', (tx) => tx.objectStore(OUTBOX).getAll());

export const drop = (key) => run(OUTBOX, 'readwrite', (tx) => tx.objectStore(OUTBOX).delete(key));

/** Marks a report the server refused (it stays, shown with the reason, until dropped). */
const markRefused = (item, error) => run(OUTBOX, 'readwrite', (tx) => tx.objectStore(OUTBOX).put({ ...item, error }));

/** Moves a report the server took to the sent list, with the server's answer. */
const markSent = (item, answer) =>
  run([OUTBOX, SENT], 'readwrite', (tx) => {
    tx.objectStore(OUTBOX).delete(item.key);
    const code = item.fields.find(([k]) => k === 'service_code')?.[1];
    return tx.objectStore(SENT).add({ answer, code, sentAt: new Date().toISOString() });
  });

/** The reports sent since the page last looked ({answer, code}), taken off the list. */
export async function takeSent() {
  let sent = [];
  await run(SENT, 'readwrite', (tx) => {
    const store = tx.objectStore(SENT);
    const all = store.getAll();
    all.onsuccess = () => {
      sent = all.result;
      store.clear();
    };
    return null;
  });
  return sent;
}

/** The multipart form of a report, its photos as `photo1`…`photo5`. */
export function formOf(fields, photos) {
  const fd = new FormData();
  for (const [k, v] of fields) fd.append(k, v);
  photos.forEach((p, i) => {
    fd.append(`photo${i + 1}`, p.blob, p.name || `photo${i + 1}.jpg`);
  });
  return fd;
}

/** Posts a report: `{ answer }` when taken, `{ refused, status }` when the server said
 * no, `{ offline: true }` when it could not be reached (or failed: it is tried again). */
export async function send(fields, photos) {
  let r;
  try {
    r = await fetch('/open311/v2/requests.json', { method: 'POST', body: formOf(fields, photos), headers: { Accept: 'application/json' } });
  } catch {
    return { offline: true };
  }
  const body = await r.json().catch(() => null);
  if (r.ok && Array.isArray(body) && body[0]?.token) return { answer: body[0] };
  if (r.status >= 500) return { offline: true };
  const why = Array.isArray(body) ? body.map((e) => e.description).join('; ') : `HTTP ${r.status}`;
  return { refused: why, status: r.status };
}

/** Sends what waits, oldest first, stopping at the first report that cannot reach the
 * server (no signal, or too many reports from here for now). `{ retry }` says whether
 * some still wait to be tried again; `{ sent }` how many the server took. */
export async function sendWaiting() {
  const work = async () => {
    let sent = 0;
    for (const item of await waiting()) {
      if (item.error) continue;
      const result = await send(item.fields, item.photos);
      if (result.offline || result.status === 429) return { retry: true, sent };
      if (result.answer) {
        await markSent(item, result.answer);
        sent += 1;
      } else {
        await markRefused(item, result.refused);
      }
    }
    return { retry: false, sent };
  };
  const locks = globalThis.navigator?.locks;
  return locks ? locks.request(SYNC_TAG, work) : work();
}

/** Asks the browser for a background sync, so that the service worker sends what waits
 * once the connection returns, even if the page is closed by then (where the browser
 * has none, the page's own retries remain). */
export async function askForSync() {
  try {
    const registration = await navigator.serviceWorker?.ready;
    await registration?.sync?.register(SYNC_TAG);
  } catch (e) {
    console.warn(e);
  }
}
