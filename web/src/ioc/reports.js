// The operations centre's citizen reports (/reports/v1): tiles for new, overdue and
// urgent reports, an inbox per agency with filters and deadline colours, a report's
// panel (map, photos, timeline, the reporter's contact for those holding the right,
// each read audited by the server), the workflow's actions one by one or in bulk, and
// a notice as soon as an urgent report arrives: the change stream (live.js) says when
// a report changed, or that it (re)connected and may have missed changes, and the
// received reports are then asked again.
import L from 'leaflet';
import { ApiError, getJson, getPage, send, session } from '../auth.js';
import { $, boxedTable, el, fmtTime, provinceMap, select } from '../common.js';
import { categoryName, iconOf, STAFF_TEXT, STAGE_NAMES } from '../report/words.js';
import { showView } from './explorer.js';
import { app } from './state.js';
import '../report/staff.css';

const OPEN_STAGES = 'received,accepted,assigned,in_progress';
const SOON_MS = 24 * 3600 * 1000;
// Reports per page of the inbox; "more" reads the next page.
const PAGE_SIZE = 100;
const AGENCY_KEY = 'ioc.reports.agency';

/** What each stage allows, and the fields each action asks for (* required). */
const STAGE_ACTIONS = {
  received: ['accept', 'reject', 'merge', 'assign', 'extend'],
  accepted: ['assign', 'start', 'resolve', 'reject', 'merge', 'extend'],
  assigned: ['start', 'resolve', 'assign', 'extend'],
  in_progress: ['resolve', 'assign', 'extend'],
  resolved: ['close'],
};
const ACTION_FIELDS = {
  accept: [['note', false]],
  reject: [['reason', true]],
  merge: [['into', true]],
  assign: [
    ['agency', false],
    ['officer', false],
  ],
  start: [['note', false]],
  extend: [
    ['working_days', true],
    ['reason', true],
  ],
  resolve: [['result', true]],
  close: [['note', false]],
};
const BULK_ACTIONS = ['accept', 'reject', 'assign', 'start', 'resolve'];

const rs = {
  lang: () => 'vi',
  loaded: false,
  categories: [],
  list: [], // the inbox as filtered, the pages read so far
  total: 0, // how many reports the filter matches
  next: null, // the next page's URL
  counts: { fresh: 0, late: 0, urgent: 0 }, // the tiles: the agency's open reports
  // The agency is remembered by the browser: an operator's inbox is their agency's.
  filter: { agency: localStorage.getItem(AGENCY_KEY) || '', stage: 'open', service_code: '', overdue: false, urgent: false },
  checked: new Set(),
  current: null, // the report in the panel
  acting: null, // the action whose form is open
  panelNote: '', // what the last action in the panel did
  contact: null, // the reporter's contact once asked: found, refused or none
  note: '', // what the last bulk action did
  seenUrgent: null, // ids of urgent reports already announced
  watching: false, // whether urgent reports are watched (signed in)
  map: null,
  // The number of the latest inbox reading: an answer that comes back after a newer
  // one was asked for (the filter changed again) is dropped, not shown.
  asked: 0,
};
const t = (k, ...a) => {
  const v = STAFF_TEXT[rs.lang()][k] ?? STAFF_TEXT.vi[k] ?? k;
  return typeof v === 'function' ? v(...a) : v;
};
const catOf = (code) => rs.categories.find((c) => c.service_code === code);
const canAct = () => ['operator', 'admin'].includes(session.me?.role);

/** A report's deadline colour: late, due within a day, in time, or ended. */
export function dueClass(r, now = Date.now()) {
  if (r.status !== 'open' && !['received', 'accepted', 'assigned', 'in_progress'].includes(r.workflowStatus)) return 'due-done';
  if (r.overdue) return 'due-late';
  return Date.parse(r.due) - now < SOON_MS ? 'due-soon' : 'due-ok';
}

function agencies() {
  const names = new Set(rs.categories.filter((c) => !c.communal).map((c) => c.agency_responsible));
  for (const r of rs.list) if (r.agency_responsible) names.add(r.agency_responsible);
  if (rs.filter.agency) names.add(rs.filter.agency);
  return [...names].sort((a, b) => a.localeCompare(b, 'vi'));
}

function query(stage, limit = PAGE_SIZE) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (stage) q.set('stage', stage);
  if (rs.filter.agency) q.set('agency', rs.filter.agency);
  return q;
}

/** How many reports a query matches (the server counts; one report is read). */
async function countOf(stage, extra = {}) {
  const q = query(stage, 1);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return (await getPage(`/reports/v1/requests?${q}`)).total;
}

/** The inbox's first page and the tiles, read again; in the `background`, the view
 * is drawn again only when the operator is not filling in an action or a selection
 * (it would wipe what they typed). */
export async function loadReports({ background = false } = {}) {
  const asked = ++rs.asked;
  if (!rs.categories.length) rs.categories = await getJson('/reports/v1/categories');
  const q = query(rs.filter.stage === 'open' ? OPEN_STAGES : rs.filter.stage);
  if (rs.filter.service_code) q.set('service_code', rs.filter.service_code);
  if (rs.filter.overdue) q.set('overdue', 'true');
  if (rs.filter.urgent) q.set('urgent', 'true');
  const [page, fresh, late, urgent] = await Promise.all([
    getPage(`/reports/v1/requests?${q}`),
    countOf('received'),
    countOf(OPEN_STAGES, { overdue: 'true' }),
    countOf(OPEN_STAGES, { urgent: 'true' }),
  ]);
  if (asked !== rs.asked) return;
  showPage(page, false);
  rs.counts = { fresh, late, urgent };
  rs.loaded = true;
  const ids = new Set(rs.list.map((r) => r.service_request_id));
  for (const id of rs.checked) if (!ids.has(id)) rs.checked.delete(id);
  if (background && (rs.acting || rs.checked.size)) return;
  renderReports();
}

function showPage(page, append) {
  rs.list = append ? [...rs.list, ...page.items] : page.items;
  rs.total = page.total;
  rs.next = page.next;
}

/** The next page of the inbox, below the rows already shown. */
async function loadMore() {
  if (!rs.next) return;
  const asked = rs.asked;
  const page = await getPage(rs.next);
  // (The inbox was read again meanwhile: this page belongs to the list it replaced.)
  if (asked !== rs.asked) return;
  showPage(page, true);
  renderReports();
}

// ---------- the view ----------

function tiles() {
  const { fresh, late, urgent } = rs.counts;
  const tile = (key, n, cls, apply) =>
    el('button', { type: 'button', class: `rs-tile ${cls}`, 'data-tile': key, onclick: apply }, el('strong', {}, String(n)), el('span', {}, t(key)));
  return el(
    'div',
    { class: 'rs-tiles', id: 'report-tiles' },
    tile('tileNew', fresh, 'tile-new', () => setFilter({ stage: 'received', overdue: false, urgent: false })),
    tile('tileOverdue', late, late ? 'tile-late' : '', () => setFilter({ stage: 'open', overdue: true, urgent: false })),
    tile('tileUrgent', urgent, urgent ? 'tile-urgent' : '', () => setFilter({ stage: 'open', overdue: false, urgent: true })),
  );
}

function setFilter(change) {
  Object.assign(rs.filter, change);
  localStorage.setItem(AGENCY_KEY, rs.filter.agency);
  rs.note = '';
  loadReports().catch(showFailure);
}

function filters() {
  const lang = rs.lang();
  const f = rs.filter;
  return el(
    'form',
    { class: 'rs-filters', onsubmit: (e) => e.preventDefault() },
    select('agency', f.agency, [['', t('allAgencies')], ...agencies().map((a) => [a, a])], (v) => setFilter({ agency: v })),
    select('stage', f.stage, [['open', t('open')], ['', t('allStages')], ...Object.entries(STAGE_NAMES[lang])], (v) => setFilter({ stage: v })),
    select('service_code', f.service_code, [['', t('allCategories')], ...rs.categories.map((c) => [c.service_code, categoryName(c, lang)])], (v) =>
      setFilter({ service_code: v }),
    ),
    el(
      'label',
      {},
      el('input', { type: 'checkbox', name: 'overdue', checked: f.overdue, onchange: (e) => setFilter({ overdue: e.target.checked }) }),
      ' ',
      t('overdueOnly'),
    ),
    el(
      'label',
      {},
      el('input', { type: 'checkbox', name: 'urgent', checked: f.urgent, onchange: (e) => setFilter({ urgent: e.target.checked }) }),
      ' ',
      t('urgentOnly'),
    ),
    el('button', { type: 'button', onclick: () => loadReports().catch(showFailure) }, t('refresh')),
  );
}

function bulkBar() {
  const n = rs.checked.size;
  const action = select('bulk-action', '', [['', t('pickAction')], ...BULK_ACTIONS.map((a) => [a, t('actions')[a]])], (v) => {
    fieldsBox.replaceChildren(...(v ? actionInputs(v) : []));
  });
  const fieldsBox = el('span', { class: 'rs-bulk-fields' });
  const note = el('span', { class: 'rs-bulk-note' });
  return el(
    'form',
    {
      class: 'rs-bulk',
      hidden: !n || !canAct(),
      onsubmit: async (e) => {
        e.preventDefault();
        if (!action.value) return;
        const body = { ids: [...rs.checked], action: actionBody(action.value, e.currentTarget) };
        try {
          const out = await send('POST', '/reports/v1/actions', body);
          const ok = out.filter((x) => x.ok).length;
          rs.note = t('bulkDone', ok, out.length - ok);
          rs.checked.clear();
          await loadReports();
        } catch (err) {
          note.textContent = `${t('failed')}${err.message}`;
        }
      },
    },
    el('strong', {}, t('selected', n)),
    action,
    fieldsBox,
    el('button', { type: 'submit', class: 'primary' }, t('bulkApply')),
    note,
  );
}

function table() {
  const lang = rs.lang();
  if (!rs.list.length) return el('p', { class: 'muted' }, t('none'));
  const all = el('input', {
    type: 'checkbox',
    'aria-label': t('selected', rs.list.length),
    checked: rs.list.every((r) => rs.checked.has(r.service_request_id)),
    onchange: (e) => {
      for (const r of rs.list) e.target.checked ? rs.checked.add(r.service_request_id) : rs.checked.delete(r.service_request_id);
      renderReports();
    },
  });
  return boxedTable(
    { id: 'report-inbox', class: 'rs-table' },
    [canAct() ? all : '', ...['colCode', 'colCategory', 'colCommune', 'colStage', 'colReceived', 'colDue'].map((k) => t(k))],
    rs.list.map((r) => {
      const c = catOf(r.service_code);
      return el(
        'tr',
        {
          'data-id': r.service_request_id,
          class: `${r.urgent ? 'urgent ' : ''}${rs.current?.service_request_id === r.service_request_id ? 'active' : ''}`,
          onclick: (e) => {
            if (e.target.closest('input')) return;
            openReport(r.service_request_id);
          },
        },
        el(
          'td',
          {},
          canAct()
            ? el('input', {
                type: 'checkbox',
                'aria-label': r.service_request_id,
                checked: rs.checked.has(r.service_request_id),
                onchange: (e) => {
                  e.target.checked ? rs.checked.add(r.service_request_id) : rs.checked.delete(r.service_request_id);
                  renderReports();
                },
              })
            : '',
        ),
        el('td', { class: 'mono' }, r.service_request_id, r.demo ? el('span', { class: 'demo-tag' }, t('demo')) : null),
        el('td', {}, `${iconOf(c)} ${c ? categoryName(c, lang) : r.service_name}`, r.urgent ? el('span', { class: 'rs-urgent' }, t('tileUrgent')) : null),
        el('td', {}, r.communeName || r.address_string || ''),
        el('td', {}, STAGE_NAMES[lang][r.workflowStatus] || r.workflowStatus),
        el('td', {}, fmtTime(lang, r.requested_datetime)),
        el('td', { class: `rs-due ${dueClass(r)}` }, fmtTime(lang, r.due), r.overdue ? ` · ${t('overdue')}` : ''),
      );
    }),
    more(),
  );
}

export function renderReports() {
  const box = $('#reports-body');
  if (!box || !rs.loaded) return;
  const parts = [
    tiles(),
    filters(),
    bulkBar(),
    rs.note ? el('p', { class: 'rs-bulk-note', id: 'bulk-note', role: 'status' }, rs.note) : null,
    el('p', { class: 'muted', id: 'report-count' }, rs.total > rs.list.length ? t('countOf', rs.list.length, rs.total) : t('count', rs.total)),
    el('div', { class: 'rs-grid' }, table(), el('aside', { class: 'rs-panel', id: 'report-panel', hidden: !rs.current }, ...panel())),
  ];
  box.replaceChildren(...parts.filter(Boolean));
  if (rs.current) drawPanelMap();
}

/** The table's last row when more pages follow: a button that reads the next one. */
function more() {
  if (!rs.next) return '';
  const button = el(
    'button',
    { type: 'button', class: 'rs-more', id: 'report-more', onclick: () => loadMore().catch(showFailure) },
    t('more', rs.total - rs.list.length),
  );
  return el('tfoot', {}, el('tr', {}, el('td', { colspan: '7' }, button)));
}

function showFailure(e) {
  const box = $('#reports-body');
  if (!box) return;
  box.prepend(el('p', { class: 'app-error', role: 'alert' }, e instanceof ApiError && e.status === 403 ? e.message : `${t('failed')}${e.message}`));
}

// ---------- a report's panel ----------

export async function openReport(id) {
  rs.current = await getJson(`/reports/v1/requests/${encodeURIComponent(id)}`);
  rs.acting = null;
  rs.contact = null;
  rs.panelNote = '';
  renderReports();
}

function fact(label, value) {
  return value || value === 0 ? el('div', { class: 'rs-fact' }, el('dt', {}, label), el('dd', {}, String(value))) : null;
}

function panel() {
  const r = rs.current;
  if (!r) return [];
  const lang = rs.lang();
  const c = catOf(r.service_code);
  const photos = r.mediaUrls || (r.media_url ? [r.media_url] : []);
  return [
    el(
      'button',
      {
        type: 'button',
        class: 'close',
        'aria-label': 'close',
        onclick: () => {
          rs.current = null;
          renderReports();
        },
      },
      '×',
    ),
    el('h2', {}, `${iconOf(c)} ${c ? categoryName(c, lang) : r.service_name}`),
    el('p', { class: 'mono', id: 'panel-code' }, r.service_request_id, r.urgent ? el('span', { class: 'rs-urgent' }, t('tileUrgent')) : null),
    el(
      'dl',
      { class: 'rs-facts' },
      el(
        'div',
        { class: 'rs-fact' },
        el('dt', {}, t('stage')),
        el('dd', { id: 'panel-stage', 'data-stage': r.workflowStatus }, STAGE_NAMES[lang][r.workflowStatus] || r.workflowStatus),
      ),
      fact(t('agency'), r.agency_responsible),
      fact(t('officer'), r.assignedOfficer),
      fact(STAFF_TEXT[lang].colCommune, r.communeName),
      fact(t('address'), r.address_string),
      fact(t('received'), fmtTime(lang, r.requested_datetime)),
      el(
        'div',
        { class: 'rs-fact' },
        el('dt', {}, t('due')),
        el('dd', { class: `rs-due ${dueClass(r)}` }, fmtTime(lang, r.due), r.overdue ? ` · ${t('overdue')}` : ''),
      ),
      fact(t('supporters'), r.supporters || null),
    ),
    el('p', { class: 'rs-desc' }, r.description),
    r.location ? el('div', { class: 'rs-map', id: 'report-panel-map' }) : null,
    photos.length
      ? el(
          'div',
          { class: 'rs-photos' },
          ...photos.map((u) =>
            el('a', { href: u, target: '_blank', rel: 'noopener' }, el('img', { src: u.replace(/\.jpg$/, '-thumb.jpg'), alt: t('photos') })),
          ),
        )
      : null,
    actionsBox(r),
    reporterBox(r),
    el('h3', {}, t('timeline')),
    el(
      'ol',
      { class: 'rs-timeline', id: 'panel-timeline' },
      ...(r.workflowHistory || []).map((h) =>
        el(
          'li',
          {},
          el('time', {}, fmtTime(lang, h.at)),
          ' ',
          `${STAGE_NAMES[lang][h.from] || h.from} → ${STAGE_NAMES[lang][h.to] || h.to}`,
          el('span', { class: 'muted' }, ` · ${h.actor}`),
          h.note ? el('div', {}, h.note) : null,
        ),
      ),
    ),
    r.extensions?.length
      ? el(
          'div',
          {},
          el('h3', {}, t('extensions')),
          el('ul', {}, ...r.extensions.map((x) => el('li', {}, `${fmtTime(lang, x.at)} · +${x.working_days} · ${x.reason} · ${x.actor}`))),
        )
      : null,
  ];
}

function drawPanelMap() {
  const r = rs.current;
  const box = $('#report-panel-map');
  if (!box || !r?.location?.coordinates) return;
  rs.map?.remove();
  const [lon, lat] = r.location.coordinates;
  rs.map = provinceMap(box, app.config, { zoomControl: false });
  // The communes around it, for bearings when there is no base map.
  if (app.communes)
    L.geoJSON(app.communes, { interactive: false, style: { color: '#51657a', weight: 1, fillColor: '#e8f1f8', fillOpacity: 0.6 } }).addTo(rs.map);
  rs.map.setView([lat, lon], 14);
  L.circleMarker([lat, lon], { radius: 9, color: '#b3261e', weight: 3, fillColor: '#ff5a4f', fillOpacity: 0.9 }).addTo(rs.map);
}

/** The inputs an action asks for, named after its fields. */
function actionInputs(action) {
  return ACTION_FIELDS[action].map(([name, required]) => {
    let input;
    if (name === 'agency') input = el('select', { name }, el('option', { value: '' }, '—'), ...agencies().map((a) => el('option', { value: a }, a)));
    else if (name === 'working_days') input = el('input', { name, type: 'number', min: 1, max: 30, required, value: 5 });
    else if (name === 'result' || name === 'reason') input = el('textarea', { name, rows: 2, maxlength: 2000, required });
    else input = el('input', { name, maxlength: 200, required });
    return el('label', { class: 'field' }, el('span', {}, `${t('fields')[name]}${required ? ' *' : ''}`), input);
  });
}

/** The action's body from a form holding its inputs. */
function actionBody(action, formEl) {
  const body = { action };
  for (const [name] of ACTION_FIELDS[action]) {
    const v = formEl.elements[name]?.value?.trim();
    if (!v) continue;
    body[name] = name === 'working_days' ? Number(v) : v;
  }
  return body;
}

function actionsBox(r) {
  if (!canAct()) return null;
  const allowed = STAGE_ACTIONS[r.workflowStatus] || [];
  if (!allowed.length) return null;
  const note = el('p', { class: 'rs-note', id: 'panel-note', role: 'status' }, rs.panelNote || '');
  const buttons = el(
    'div',
    { class: 'rs-actions' },
    ...allowed.map((a) =>
      el(
        'button',
        {
          type: 'button',
          'data-action': a,
          class: rs.acting === a ? 'primary' : '',
          onclick: () => {
            rs.acting = rs.acting === a ? null : a;
            rs.panelNote = '';
            renderReports();
          },
        },
        t('actions')[a],
      ),
    ),
  );
  const form = rs.acting
    ? el(
        'form',
        {
          class: 'rs-act',
          id: 'action-form',
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              const done = await send(
                'POST',
                `/reports/v1/requests/${encodeURIComponent(r.service_request_id)}/actions`,
                actionBody(rs.acting, e.currentTarget),
              );
              rs.current = await getJson(`/reports/v1/requests/${encodeURIComponent(done.service_request_id)}`);
              rs.acting = null;
              rs.panelNote = t('done');
              await loadReports();
            } catch (err) {
              note.textContent = `${t('failed')}${err.message}`;
            }
          },
        },
        ...actionInputs(rs.acting),
        el('button', { type: 'submit', class: 'primary' }, t('confirm')),
      )
    : null;
  return el('div', {}, buttons, form, note);
}

function reporterBox(r) {
  if (!r.hasContact || !canAct()) return null;
  const lang = rs.lang();
  const box = el('div', { class: 'rs-reporter', id: 'panel-reporter' }, el('h3', {}, t('reporter')));
  const c = rs.contact;
  if (c === null || c === undefined) {
    box.append(
      el(
        'button',
        {
          type: 'button',
          id: 'show-reporter',
          onclick: async () => {
            try {
              const found = await getJson(`/reports/v1/requests/${encodeURIComponent(r.service_request_id)}/reporter`);
              rs.contact = found.reporter || { none: true };
            } catch (e) {
              rs.contact = e instanceof ApiError && e.status === 403 ? { refused: true } : { error: e.message };
            }
            renderReports();
          },
        },
        t('showReporter'),
      ),
    );
  } else if (c.refused) box.append(el('p', { class: 'muted' }, t('noReporterRight')));
  else if (c.none) box.append(el('p', { class: 'muted' }, t('noReporter')));
  else if (c.error) box.append(el('p', { class: 'muted' }, `${t('failed')}${c.error}`));
  else {
    const p = c.contact || {};
    box.append(
      el(
        'dl',
        { class: 'rs-facts' },
        fact(t('reporterName'), [p.first_name, p.last_name].filter(Boolean).join(' ')),
        fact(t('reporterPhone'), p.phone),
        fact(t('reporterEmail'), p.email),
      ),
      el('p', { class: 'muted small' }, t('consent', c.consent_version, fmtTime(lang, c.consent_at))),
    );
  }
  return box;
}

// ---------- urgent reports, as soon as they arrive ----------

async function poll() {
  try {
    const fresh = await getJson(`/reports/v1/requests?stage=received&limit=500`);
    const urgent = fresh.filter((r) => r.urgent);
    if (rs.seenUrgent === null) rs.seenUrgent = new Set(urgent.map((r) => r.service_request_id));
    else {
      for (const r of urgent) {
        if (rs.seenUrgent.has(r.service_request_id)) continue;
        rs.seenUrgent.add(r.service_request_id);
        announce(r);
      }
    }
    // The inbox follows, unless the operator is filling in an action or a selection.
    if (rs.loaded && document.querySelector('#view-reports.active')) await loadReports({ background: true });
  } catch (e) {
    if (session.expired) return;
    console.warn(e);
  }
}

let soon = null;

/** A report changed (the change stream says so): the inbox is asked again shortly, as
 * one call for a burst of changes. */
export function reportsChanged() {
  if (!rs.watching || soon) return;
  soon = setTimeout(() => {
    soon = null;
    poll();
  }, 300);
}

function announce(r) {
  const lang = rs.lang();
  const c = catOf(r.service_code);
  let box = $('#urgent-reports');
  if (!box) {
    box = el('div', { id: 'urgent-reports', class: 'rs-urgent-box', role: 'alert', 'aria-live': 'assertive' });
    document.body.append(box);
  }
  const item = el(
    'div',
    { class: 'rs-urgent-item', 'data-id': r.service_request_id },
    el('strong', {}, `${iconOf(c)} ${t('urgentNotice')}`),
    el('span', {}, ` ${c ? categoryName(c, lang) : r.service_name} · ${r.communeName || r.address_string || ''} · ${r.service_request_id}`),
    el(
      'button',
      {
        type: 'button',
        class: 'primary',
        onclick: () => {
          item.remove();
          showView('reports');
          openReport(r.service_request_id).catch(showFailure);
        },
      },
      t('openIt'),
    ),
    el('button', { type: 'button', 'aria-label': t('dismiss'), onclick: () => item.remove() }, '×'),
  );
  box.prepend(item);
}

/** Starts the watch for urgent reports (every signed-in member of staff sees them):
 * the received reports now, then whenever the change stream says a report changed or
 * the stream (re)connects — no polling. */
export function startReports(getLang) {
  rs.lang = getLang;
  rs.watching = true;
  poll();
}

export function stopReports() {
  rs.watching = false;
}

/** The view, when its tab is opened. */
export function showReports() {
  loadReports().catch(showFailure);
}

export function translateReports() {
  const tab = $('.tab[data-view="reports"]');
  if (tab) tab.textContent = t('tab');
  renderReports();
}

// For the operator's console and the browser tests.
export const reportsState = rs;
