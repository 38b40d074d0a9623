// Reports made without signal, kept on the phone until they can be sent: each is the
// form's fields and its photos (as Blobs) in IndexedDB, which keeps binary data and
// outlives the page. The page sends them again when the browser says it is online, when
// it is opened, and every half minute while some wait.

const DB = 'dothi-reports';
const STORE = 'outbox';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'key', autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keeps a report: `fields` as [name, value] pairs, `photos` as [{name, type, blob}]. */
export const keep = (fields, photos) => run('readwrite', (s) => s.add({ madeAt: new Date().toISOString(), fields, photos, error: null }));

/** Everything waiting, oldest first. */
export const waiting = () => run('readonly', (s) => s.getAll());

export const drop = (key) => run('readwrite', (s) => s.delete(key));

/** Marks a report the server refused (it stays, shown with the reason, until dropped). */
export const markRefused = (item, error) => run('readwrite', (s) => s.put({ ...item, error }));

/** The multipart form of a report, its photos as `photo1`…`photo5`. */
export function formOf(fields, photos) {
  const fd = new FormData();
  for (const [k, v] of fields) fd.append(k, v);
  photos.forEach((p, i) => {
    fd.append(`photo${i + 1}`, p.blob, p.name || `photo${i + 1}.jpg`);
  });
  return fd;
}
