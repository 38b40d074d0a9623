// The report form: a category (grouped, with icons, and its attributes), the place by
// GPS or a pin on the map, the open reports of the category within 50 m (support one
// instead), up to 5 photos and a description, an optional contact with the consent
// shown and its version sent. Posted to Open311 (multipart); without signal it is kept
// on the phone (outbox.js) and sent when the connection returns.
import L from 'leaflet';
import { $, el, fmtTime, provinceMap } from '../common.js';
import { askForSync, drop, keep, send, sendWaiting, takeSent, waiting } from './outbox.js';
import { CONSENT_VERSION, categoryName, groupName, iconOf, STAGE_NAMES } from './words.js';

const MAX_PHOTOS = 5;
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const PHOTO_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp']);
const RETRY_MS = 30_000;
const MINE = 'dothi.reports.mine';

/** What the form holds. */
export const form = {
  page: null, // { lang, t, categories, config, communes }
  category: null,
  point: null, // { lat, lon }
  photos: [], // { name, type, blob, dataUrl }
  map: null,
  pin: null,
};

const t = (k, ...a) => form.page.t(k, ...a);

// ---------- the reports made on this device ----------

/** The reports sent from this device: code, tracking token, category, time. */
export function mine() {
  try {
    const v = JSON.parse(localStorage.getItem(MINE) || '[]');
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function remember(answer, code) {
  const list = mine().filter((m) => m.id !== answer.service_request_id);
  list.unshift({ id: answer.service_request_id, token: answer.token, code, at: new Date().toISOString() });
  localStorage.setItem(MINE, JSON.stringify(list.slice(0, 50)));
}

export const trackUrl = (token) => `${location.origin}/report/track#${token}`;

// ---------- categories ----------

function renderCategories() {
  const lang = form.page.lang;
  const groups = new Map();
  for (const c of form.page.categories) {
    const g = groupName(c, lang);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(c);
  }
  const box = $('#categories');
  box.replaceChildren(
    ...[...groups].map(([g, cats]) =>
      el(
        'fieldset',
        { class: 'rp-group' },
        el('legend', {}, g),
        ...cats.map((c) =>
          el(
            'button',
            {
              type: 'button',
              class: `rp-cat${form.category?.service_code === c.service_code ? ' active' : ''}${c.urgent ? ' urgent' : ''}`,
              'data-code': c.service_code,
              'aria-pressed': String(form.category?.service_code === c.service_code),
              onclick: () => pickCategory(c),
            },
            el('span', { class: 'rp-icon', 'aria-hidden': 'true' }, iconOf(c)),
            el('span', {}, categoryName(c, lang)),
            c.urgent ? el('span', { class: 'rp-urgent' }, t('urgent')) : null,
          ),
        ),
      ),
    ),
  );
  renderAttributes();
}

function pickCategory(c) {
  form.category = c;
  renderCategories();
  lookNearby();
}

/** The category's attributes to fill, in order (lists as selects). */
function renderAttributes() {
  const box = $('#attributes');
  const defs = (form.category?.attributes || []).filter((a) => a.variable !== false).sort((a, b) => (a.order || 0) - (b.order || 0));
  const kept = new Map([...box.querySelectorAll('[data-attr]')].map((e) => [e.dataset.attr, e.value]));
  box.replaceChildren(
    ...defs.map((a) => {
      const label = `${a.description}${a.required ? ' *' : ''}`;
      let input;
      if (a.datatype === 'singlevaluelist' || a.datatype === 'multivaluelist') {
        input = el(
          'select',
          { 'data-attr': a.code, multiple: a.datatype === 'multivaluelist', required: a.required },
          a.datatype === 'singlevaluelist' ? el('option', { value: '' }, '—') : null,
          ...(a.values || []).map((v) => el('option', { value: v.key }, v.name)),
        );
      } else if (a.datatype === 'text') {
        input = el('textarea', { 'data-attr': a.code, rows: 2, maxlength: 1000, required: a.required });
      } else {
        input = el('input', { 'data-attr': a.code, type: a.datatype === 'number' ? 'number' : 'text', maxlength: 500, required: a.required });
      }
      if (kept.has(a.code) && !input.multiple) input.value = kept.get(a.code);
      return el('label', { class: 'rp-field' }, el('span', {}, label), input);
    }),
  );
}

/** The attributes' values as Open311 fields, or the name of a required one missing. */
function attributeFields() {
  const out = [];
  for (const a of form.category?.attributes || []) {
    const input = $(`#attributes [data-attr="${CSS.escape(a.code)}"]`);
    if (!input) continue;
    const values = input.multiple ? [...input.selectedOptions].map((o) => o.value) : [input.value.trim()];
    const given = values.filter((v) => v !== '');
    if (a.required && !given.length) return { missing: a.description };
    for (const v of given) out.push([`attribute[${a.code}]`, v]);
  }
  return { fields: out };
}

// ---------- the place ----------

export function initMap() {
  const { config, communes } = form.page;
  form.map = provinceMap($('#report-map'), config, { zoomControl: true });
  if (communes) {
    const layer = L.geoJSON(communes, {
      pane: 'communes',
      interactive: false,
      style: { color: '#51657a', weight: 0.7, fillColor: '#e8f1f8', fillOpacity: 0.5 },
    }).addTo(form.map);
    form.map.fitBounds(layer.getBounds(), { padding: [4, 4] });
  }
  form.map.on('click', (e) => setPoint(e.latlng.lat, e.latlng.lng, false));
  $('#gps').addEventListener('click', locate);
}

function setPoint(lat, lon, zoom) {
  form.point = { lat, lon };
  if (form.pin) form.pin.setLatLng([lat, lon]);
  else form.pin = L.circleMarker([lat, lon], { radius: 10, color: '#b3261e', weight: 3, fillColor: '#ff5a4f', fillOpacity: 0.9 }).addTo(form.map);
  // Close enough to see the street's commune around it (there may be no base map).
  if (zoom) form.map.setView([lat, lon], 15);
  renderPlace();
  lookNearby();
}

export function renderPlace() {
  const p = form.point;
  $('#place').textContent = p ? t('placeSet', p.lat.toFixed(6), p.lon.toFixed(6)) : t('placeNone');
}

function locate() {
  if (!navigator.geolocation) {
    $('#place').textContent = t('gpsFailed');
    return;
  }
  $('#place').textContent = t('gpsWorking');
  navigator.geolocation.getCurrentPosition(
    (pos) => setPoint(pos.coords.latitude, pos.coords.longitude, true),
    () => {
      $('#place').textContent = t('gpsFailed');
    },
    { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 },
  );
}

// ---------- reports nearby ----------

let nearbyAsk = 0;

/** The open reports of the category within 50 m, to support instead of filing again. */
async function lookNearby() {
  const box = $('#nearby');
  if (!form.category || !form.point || !navigator.onLine) {
    box.hidden = true;
    return;
  }
  const ask = ++nearbyAsk;
  const q = new URLSearchParams({ service_code: form.category.service_code, lat: form.point.lat, long: form.point.lon });
  let found = [];
  try {
    const r = await fetch(`/reports/v1/nearby?${q}`, { headers: { Accept: 'application/json' } });
    if (r.ok) found = await r.json();
  } catch {
    /* no signal: nothing to show */
  }
  if (ask !== nearbyAsk) return;
  box.hidden = !found.length;
  const lang = form.page.lang;
  box.replaceChildren(
    el('h3', {}, t('nearbyTitle')),
    el('p', { class: 'muted small' }, t('nearbyLead')),
    el(
      'ul',
      {},
      ...found.map((r) => {
        const note = el('p', { class: 'rp-supported', role: 'status' });
        return el(
          'li',
          { 'data-id': r.service_request_id },
          el('strong', {}, r.service_request_id),
          ' · ',
          STAGE_NAMES[lang][r.workflowStatus] || r.workflowStatus,
          ' · ',
          fmtTime(lang, r.requested_datetime),
          el('p', {}, r.description || ''),
          el('span', { class: 'muted small' }, t('supporters', r.supporters || 0)),
          el('button', { type: 'button', class: 'rp-button', onclick: (e) => support(r.service_request_id, e.currentTarget, note) }, t('support')),
          note,
        );
      }),
    ),
  );
}

async function support(id, button, note) {
  button.disabled = true;
  try {
    const r = await fetch(`/reports/v1/requests/${encodeURIComponent(id)}/support`, { method: 'POST', headers: { Accept: 'application/json' } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || `HTTP ${r.status}`);
    note.textContent = t('supported', body.supporters);
  } catch (e) {
    note.textContent = `${t('refused')}${e.message}`;
    button.disabled = false;
  }
}

// ---------- photos ----------

function readDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

async function addPhotos(files) {
  const error = $('#form-error');
  error.hidden = true;
  for (const f of files) {
    if (form.photos.length >= MAX_PHOTOS) {
      showFormError(t('tooManyPhotos'));
      break;
    }
    if (!PHOTO_TYPES.has(f.type)) {
      showFormError(t('photoType', f.name));
      continue;
    }
    if (f.size > MAX_PHOTO_BYTES) {
      showFormError(t('photoTooLarge', f.name));
      continue;
    }
    // The preview is a data: URL (the page's policy allows no blob: images).
    form.photos.push({ name: f.name, type: f.type, blob: f, dataUrl: await readDataUrl(f) });
  }
  renderPhotos();
}

function renderPhotos() {
  $('#photo-list').replaceChildren(
    ...form.photos.map((p, i) =>
      el(
        'li',
        {},
        el('img', { src: p.dataUrl, alt: p.name }),
        el(
          'button',
          {
            type: 'button',
            class: 'rp-remove',
            'aria-label': t('removePhoto'),
            onclick: () => {
              form.photos.splice(i, 1);
              renderPhotos();
            },
          },
          '×',
        ),
      ),
    ),
  );
}

// ---------- sending ----------

function showFormError(text) {
  const e = $('#form-error');
  e.textContent = text;
  e.hidden = false;
}

/** The form's fields, or why it cannot be sent yet. */
function collect() {
  if (!form.category) return { error: t('needCategory') };
  if (!form.point) return { error: t('needPlace') };
  const description = $('#description').value.trim();
  if (!description) return { error: t('needDescription') };
  const attrs = attributeFields();
  if (attrs.missing) return { error: t('needAttribute', attrs.missing) };
  const contact = [
    ['first_name', $('#contact-name').value.trim()],
    ['phone', $('#contact-phone').value.trim()],
    ['email', $('#contact-email').value.trim()],
  ].filter(([, v]) => v);
  if (contact.length && !$('#consent').checked) return { error: t('consentNeeded') };
  const fields = [
    ['jurisdiction_id', 'quangtri'],
    ['service_code', form.category.service_code],
    ['lat', form.point.lat.toFixed(6)],
    ['long', form.point.lon.toFixed(6)],
    ['description', description],
    ...attrs.fields,
    ...contact,
  ];
  if (contact.length) fields.push(['consent', CONSENT_VERSION]);
  const honeypot = $('#website').value;
  if (honeypot) fields.push(['website', honeypot]);
  return { fields };
}

async function submit(e) {
  e.preventDefault();
  $('#form-error').hidden = true;
  const { fields, error } = collect();
  if (error) {
    showFormError(error);
    return;
  }
  const photos = form.photos.map(({ name, type, blob }) => ({ name, type, blob }));
  const button = $('#submit');
  button.disabled = true;
  button.textContent = t('sending');
  try {
    const result = navigator.onLine ? await send(fields, photos) : { offline: true };
    if (result.answer) {
      remember(result.answer, form.category.service_code);
      showDone(result.answer);
    } else if (result.offline) {
      try {
        await keep([...fields, ['attribute[recorded_offline_at]', new Date().toISOString()]], photos);
        showQueued();
        scheduleFlush();
        askForSync();
      } catch (e) {
        // No room, or no IndexedDB (some private windows): the form stays as it is.
        showFormError(`${t('keepFailed')}${e?.message || e}`);
      }
    } else {
      showFormError(`${t('refused')}${result.refused}`);
    }
  } finally {
    button.disabled = false;
    button.textContent = t('submit');
  }
  await renderOutbox();
}

function reset() {
  $('#report-form').reset();
  form.category = null;
  form.photos = [];
  renderCategories();
  renderPhotos();
  $('#nearby').hidden = true;
}

function showDone(answer) {
  const url = trackUrl(answer.token);
  $('#report-form').hidden = true;
  const done = $('#done');
  done.hidden = false;
  done.replaceChildren(
    el('h2', {}, t('sentTitle')),
    el('p', {}, `${t('sentCode')}: `, el('strong', { id: 'done-code' }, answer.service_request_id)),
    answer.service_notice ? el('p', { class: 'muted' }, answer.service_notice) : null,
    el('p', {}, el('a', { id: 'done-link', href: url }, t('sentLink'))),
    el('p', { class: 'rp-link' }, url),
    el('p', { class: 'muted small' }, t('sentKeep')),
    el('button', { type: 'button', class: 'rp-button', onclick: another }, t('another')),
  );
  reset();
  form.page.renderMine();
}

function showQueued() {
  $('#report-form').hidden = true;
  const done = $('#done');
  done.hidden = false;
  done.replaceChildren(
    el('h2', {}, t('queuedTitle')),
    el('p', { id: 'queued-note' }, t('queued')),
    el('button', { type: 'button', class: 'rp-button', onclick: another }, t('another')),
  );
  reset();
}

function another() {
  $('#done').hidden = true;
  $('#report-form').hidden = false;
  form.map?.invalidateSize();
}

// ---------- the outbox ----------

let timer = null;

function scheduleFlush() {
  if (!timer) timer = setTimeout(flush, RETRY_MS);
}

/** Sends what waits on the phone (unless the service worker is at it: one sender at a
 * time), then shows what was sent, by the page or by the service worker while the page
 * was closed, and remembers its tracking link. */
export async function flush() {
  timer = null;
  try {
    const { retry } = await sendWaiting();
    if (retry) scheduleFlush();
  } catch (e) {
    console.warn(e);
  }
  await showSent();
}

/** Remembers and shows the reports sent since the page last looked. */
export async function showSent() {
  let sent = [];
  try {
    sent = await takeSent();
  } catch {
    /* no IndexedDB (a private window): nothing was kept, so nothing was sent */
  }
  for (const s of sent) remember(s.answer, s.code);
  await renderOutbox(sent.map((s) => s.answer));
  if (sent.length) form.page.renderMine();
}

/** What waits on the phone, and the reports just sent from it. */
export async function renderOutbox(sent = []) {
  const box = $('#outbox');
  let items = [];
  try {
    items = await waiting();
  } catch {
    /* no IndexedDB (a private window): nothing can wait */
  }
  const pending = items.filter((i) => !i.error);
  const refused = items.filter((i) => i.error);
  box.hidden = !items.length && !sent.length;
  box.replaceChildren(
    el('h2', {}, t('outboxTitle')),
    ...sent.map((a) => el('p', { class: 'rp-sent' }, t('outboxSent', a.service_request_id), ' ', el('a', { href: trackUrl(a.token) }, t('sentLink')))),
    pending.length ? el('p', { id: 'outbox-count' }, t('outboxItem', pending.length)) : null,
    ...refused.map((i) =>
      el(
        'p',
        { class: 'rp-error' },
        `${fmtTime(form.page.lang, i.madeAt)}: ${t('outboxFailed')}${i.error} `,
        el(
          'button',
          {
            type: 'button',
            class: 'rp-button',
            onclick: async () => {
              await drop(i.key);
              renderOutbox();
            },
          },
          t('discard'),
        ),
      ),
    ),
  );
  if (pending.length) scheduleFlush();
}

export function initForm(page) {
  form.page = page;
  $('#photos').addEventListener('change', (e) => {
    addPhotos([...e.target.files]);
    e.target.value = '';
  });
  $('#report-form').addEventListener('submit', submit);
  // What was wrong is said again at the next try, not left over after a correction.
  $('#report-form').addEventListener('change', (e) => {
    if (e.target.id !== 'photos') $('#form-error').hidden = true;
  });
  window.addEventListener('online', flush);
  // The service worker says when it has sent what waited.
  navigator.serviceWorker?.addEventListener('message', (e) => {
    if (e.data?.type === 'reports-sent') showSent();
  });
}

/** The form's words again, in the page's language. */
export function translateForm() {
  $('#consent-text').replaceChildren(...t('consentText').map((p) => el('p', {}, p)));
  $('#consent-version').textContent = t('consentVersion', CONSENT_VERSION);
  $('#description').placeholder = t('descriptionHint');
  if (form.page.categories) renderCategories();
  renderPlace();
}
