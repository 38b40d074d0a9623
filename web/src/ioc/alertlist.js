// The operations centre's alert list (/alerts/v1/alerts): the active and recent
// alerts with their severity, place, entity, since when and state (firing,
// acknowledged, resolved), filtered by severity and state; operators and admins
// acknowledge or resolve from it. The banner's stream (alerts.js) says when an alert
// changed: the list is then asked again, once for a burst.

import { actOn, onAlertsChanged } from '../alerts.js';
import { ApiError, getJson, session } from '../auth.js';
import { $, boxedTable, el, fmtTime, select, token } from '../common.js';
import { ALERT_LIST_TEXT, wordsOf } from '../i18n.js';

/** The most recent alerts listed. */
const SHOWN = 500;
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'informational'];
const STATES = ['active', 'firing', 'acknowledged', 'resolved', 'all'];

const al = {
  lang: () => 'vi',
  loaded: false,
  visible: false,
  filter: { severity: '', state: 'active' },
  list: [],
  total: 0,
  note: '',
  soon: null,
  /** The number of the latest reading asked for: an older answer that comes back after
   * a newer one (the filter changed twice quickly) is dropped, not shown. */
  asked: 0,
};
const t = wordsOf(ALERT_LIST_TEXT, () => al.lang());
const canAct = () => ['operator', 'admin'].includes(session.me?.role);
const since = (a) => a.validFrom || a.dateIssued || '';

function describe(a) {
  const d = a.description;
  if (d && typeof d === 'object') return d[al.lang()] || d.vi || d.en || a.id;
  return d || a.id;
}

/** The filter as the API's parameters. */
function params() {
  const q = new URLSearchParams();
  if (al.filter.severity) q.set('severity', al.filter.severity);
  if (al.filter.state === 'active') q.set('open', 'true');
  else if (al.filter.state !== 'all') q.set('status', al.filter.state);
  return q;
}

/** The list, read again. The API lists alerts in the order they were raised, so the
 * most recent are its last page. */
export async function loadAlertList() {
  const asked = ++al.asked;
  const q = params();
  q.set('limit', '1');
  const head = await getJson(`/alerts/v1/alerts?${q}`);
  q.set('limit', String(SHOWN));
  q.set('offset', String(Math.max(0, head.count - SHOWN)));
  const page = await getJson(`/alerts/v1/alerts?${q}`);
  if (asked !== al.asked) return;
  al.list = (page.alerts || []).sort((x, y) => String(since(y)).localeCompare(String(since(x))));
  al.total = Math.max(page.count ?? 0, al.list.length);
  al.loaded = true;
  renderAlertList();
}

function setFilter(change) {
  Object.assign(al.filter, change);
  al.note = '';
  loadAlertList().catch(showFailure);
}

async function act(a, what) {
  try {
    await actOn(a.id, what);
    al.note = '';
    await loadAlertList();
  } catch (e) {
    al.note = `${t('failed')}${e.message}`;
    renderAlertList();
  }
}

function filters() {
  const f = al.filter;
  return el(
    'div',
    { class: 'alist-filters', id: 'alert-filters' },
    el(
      'label',
      {},
      `${t('severity')} `,
      select('severity', f.severity, [['', t('anySeverity')], ...SEVERITIES.map((s) => [s, t('severities')[s]])], (v) => setFilter({ severity: v })),
    ),
    el(
      'label',
      {},
      `${t('state')} `,
      select(
        'state',
        f.state,
        STATES.map((s) => [s, t('states')[s]]),
        (v) => setFilter({ state: v }),
      ),
    ),
    el('button', { type: 'button', onclick: () => loadAlertList().catch(showFailure) }, t('refresh')),
  );
}

function row(a) {
  const lang = al.lang();
  const status = a.status || '';
  const who = status === 'acknowledged' ? a.acknowledgedBy : status === 'resolved' ? a.resolvedBy : null;
  return el(
    'tr',
    { 'data-alert': a.id, 'data-status': status, 'data-severity': a.severity },
    el('td', {}, el('span', { class: `al-sev al-${token(a.severity)}` }, t('severities')[a.severity] || a.severity)),
    el('td', { class: 'alist-text' }, describe(a)),
    el('td', { class: 'mono' }, a.alertSource || ''),
    el('td', {}, fmtTime(lang, since(a))),
    el('td', {}, el('span', { class: `alist-state alist-${token(status)}` }, t('states')[status] || status), who ? el('small', {}, ` ${t('by', who)}`) : null),
    el(
      'td',
      { class: 'alist-actions' },
      canAct() && status === 'firing' ? el('button', { type: 'button', class: 'primary', onclick: () => act(a, 'acknowledge') }, t('acknowledge')) : null,
      canAct() && status !== 'resolved' ? el('button', { type: 'button', onclick: () => act(a, 'resolve') }, t('resolve')) : null,
    ),
  );
}

function table() {
  if (!al.list.length) return el('p', { class: 'muted', id: 'alert-none' }, t('none'));
  return boxedTable(
    { id: 'alert-list', class: 'alist-table' },
    ['colSeverity', 'colAlert', 'colEntity', 'colSince', 'colState', 'colActions'].map((k) => t(k)),
    al.list.map(row),
  );
}

export function renderAlertList() {
  const box = $('#alerts-body');
  if (!box || !al.loaded) return;
  // (replaceChildren would write a null as the text "null".)
  box.replaceChildren(
    ...[
      filters(),
      al.note ? el('p', { class: 'app-error', role: 'alert' }, al.note) : null,
      el('p', { class: 'muted', id: 'alert-count' }, t('count', al.list.length, al.total)),
      table(),
    ].filter(Boolean),
  );
}

function showFailure(e) {
  const box = $('#alerts-body');
  if (!box) return;
  box.prepend(el('p', { class: 'app-error', role: 'alert' }, e instanceof ApiError && e.status === 403 ? e.message : `${t('failed')}${e.message}`));
}

/** Sets the page's language source and follows the banner's stream. */
export function initAlertList(getLang) {
  al.lang = getLang;
  onAlertsChanged(() => {
    if (!al.visible || al.soon) return;
    al.soon = setTimeout(() => {
      al.soon = null;
      loadAlertList().catch(showFailure);
    }, 300);
  });
}

/** The view, when its tab is opened (`shown`) or left. */
export function showAlertList(shown) {
  al.visible = shown;
  if (shown) loadAlertList().catch(showFailure);
}

export function translateAlertList() {
  const tab = $('.tab[data-view="alerts"]');
  if (tab) tab.textContent = t('tab');
  renderAlertList();
}
