// The side panel: an entity's or a commune's attributes, formatted (format.js), and
// the history chart of one of its numeric attributes over 24 h, 7 or 30 days.
import uPlot from 'uplot';
import { getJson } from '../auth.js';
import { $, el, TZ } from '../common.js';
import { ATTR_NAMES, INDICATOR_NAMES, STATE_NAMES } from '../i18n.js';
import { showExplorerOfCommune } from './explorer.js';
import { valueText } from './format.js';
import { resizeMap } from './map.js';
import { app, fmtNumber, fmtTime, NGSI, t } from './state.js';

/** Attributes the panel leaves out: geometry and links shown elsewhere. */
const HIDDEN = new Set(['displayBoundary', 'source', 'formedFrom', 'refAdministrativeArea', 'containedInPlace']);
const COMMUNE_ATTRS = 'id,type,name,code,kind,areaKm2,alternateName,population';
/** The chart's ranges: seconds back from now, and the aggregation period. */
const RANGES = { '24h': [86400, 'PT15M'], '7d': [7 * 86400, 'PT1H'], '30d': [30 * 86400, 'P1D'] };

const shortValue = (name, attr) => valueText(app.lang, name, attr);
const attrName = (k) => ATTR_NAMES[app.lang][k] || k;

/** The first instance of an attribute (multi-attributes come as arrays). */
const first = (attr) => (Array.isArray(attr) ? attr[0] : attr);

export async function openPanel(id, kind, resetChart = true) {
  app.selected = { id, kind };
  const panel = $('#panel');
  if (panel.hidden) {
    panel.hidden = false;
    document.body.classList.add('panel-open');
    resizeMap();
  }
  const body = $('#panel-body');
  let entity;
  try {
    const pick = kind === 'commune' ? `&pick=${COMMUNE_ATTRS}` : '';
    entity = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}?options=sysAttrs${pick}`);
  } catch (_e) {
    body.replaceChildren(el('p', { class: 'muted' }, t('noResult')));
    return;
  }
  if (app.selected?.id !== id) return;
  const item = app.markers.get(id)?.item;
  const name = entity.name ? shortValue('name', first(entity.name)) : id;
  const rows = [];
  let modified = null;
  const numeric = [];
  for (const [k, attr] of Object.entries(entity)) {
    if (['id', 'type', '@context', 'name'].includes(k) || HIDDEN.has(k) || !attr || typeof attr !== 'object') continue;
    const a = first(attr);
    if (a.observedAt && (!modified || a.observedAt > modified)) modified = a.observedAt;
    if (typeof a.value === 'number' && a.observedAt) numeric.push(k);
    rows.push(
      el(
        'tr',
        { 'data-attr': k },
        el('th', {}, attrName(k)),
        el('td', {}, el('span', { class: 'value' }, shortValue(k, a)), el('span', { class: 'when' }, a.observedAt ? fmtTime(a.observedAt) : '')),
      ),
    );
  }
  const parts = [
    el(
      'div',
      { class: 'panel-type' },
      entity.type,
      item?.demo || /demo/.test(id) ? el('span', { class: 'badge demo' }, t('demo')) : null,
      item ? el('span', { class: `badge state st-${item.state}` }, STATE_NAMES[app.lang][item.state]) : null,
    ),
    el('h2', { class: 'panel-title' }, name),
    el('div', { class: 'panel-id' }, id),
  ];
  modified = modified || entity.modifiedAt;
  if (modified) parts.push(el('div', { class: 'panel-updated' }, `${t('lastUpdate')}: ${fmtTime(modified)}`));
  if (kind === 'commune') parts.push(...communeFigures(id));
  if (numeric.length) {
    if (resetChart || !numeric.includes(app.chartAttr)) app.chartAttr = preferredAttr(numeric);
    parts.push(el('h3', {}, t('history')), chartControls(id, numeric), el('div', { id: 'chart', class: 'chart' }));
  }
  parts.push(el('h3', {}, t('attributes')), el('table', { class: 'attrs' }, el('tbody', {}, rows)));
  body.replaceChildren(...parts);
  if (numeric.length) drawChart(id);
}

function communeFigures(id) {
  const p = app.communes.features.find((f) => f.properties.id === id)?.properties || {};
  return [
    el(
      'div',
      { class: 'commune-figures' },
      figure(t('entitiesHere'), p.entities),
      figure(t('alertsHere'), p.alerts),
      figure(INDICATOR_NAMES[app.lang].broadband, p.broadband),
      figure(INDICATOR_NAMES[app.lang]['5g'], p['5g']),
    ),
    el('button', { class: 'button', onclick: () => showExplorerOfCommune(id) }, t('showInExplorer')),
  ];
}

function chartControls(id, numeric) {
  const select = el(
    'select',
    {
      id: 'chart-attr',
      onchange: (e) => {
        app.chartAttr = e.target.value;
        drawChart(id);
      },
    },
    numeric.map((n) => el('option', { value: n, selected: n === app.chartAttr }, attrName(n))),
  );
  const ranges = Object.keys(RANGES).map((r) =>
    el(
      'button',
      {
        class: r === app.range ? 'active' : '',
        'data-range': r,
        onclick: () => {
          app.range = r;
          drawChart(id);
          for (const b of document.querySelectorAll('.ranges button')) b.classList.toggle('active', b.dataset.range === r);
        },
      },
      t(`range${r}`),
    ),
  );
  return el('div', { class: 'chart-controls' }, select, el('div', { class: 'ranges' }, ranges));
}

// A live change of the open entity: its values, time and state in place, and the
// chart's data, without rebuilding the panel.
export async function refreshPanel(id) {
  let entity;
  try {
    entity = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}`);
  } catch (_e) {
    return;
  }
  if (app.selected?.id !== id) return;
  let modified = null;
  for (const [k, attr] of Object.entries(entity)) {
    if (!attr || typeof attr !== 'object' || HIDDEN.has(k)) continue;
    const a = first(attr);
    if (a.observedAt && (!modified || a.observedAt > modified)) modified = a.observedAt;
    const row = document.querySelector(`#panel tr[data-attr="${CSS.escape(k)}"]`);
    if (!row) continue;
    row.querySelector('.value').textContent = shortValue(k, a);
    row.querySelector('.when').textContent = a.observedAt ? fmtTime(a.observedAt) : '';
  }
  const updated = $('#panel .panel-updated');
  if (updated && modified) updated.textContent = `${t('lastUpdate')}: ${fmtTime(modified)}`;
  const item = app.markers.get(id)?.item;
  const badge = $('#panel .badge.state');
  if (badge && item) {
    badge.className = `badge state st-${item.state}`;
    badge.textContent = STATE_NAMES[app.lang][item.state];
  }
  if ($('#chart')) drawChart(id);
}

function figure(label, value) {
  return el('div', { class: 'figure' }, el('b', {}, typeof value === 'number' ? fmtNumber(value, 1) : '–'), el('span', {}, label));
}

function preferredAttr(names) {
  for (const n of ['waterLevel', 'pm25', 'temperature', 'intensity', 'kpiValue']) if (names.includes(n)) return n;
  return names[0];
}

async function drawChart(id) {
  const box = $('#chart');
  if (!box) return;
  const attr = app.chartAttr;
  const [span, period] = RANGES[app.range];
  const from = new Date(Date.now() - span * 1000).toISOString();
  const url =
    `${NGSI}/temporal/entities/${encodeURIComponent(id)}?attrs=${encodeURIComponent(attr)}&options=aggregatedValues` +
    `&aggrMethods=avg,min,max&aggrPeriodDuration=${period}&timerel=after&timeAt=${encodeURIComponent(from)}`;
  let data;
  try {
    data = await getJson(url);
  } catch (_e) {
    data = {};
  }
  if (app.selected?.id !== id || app.chartAttr !== attr) return;
  const a = first(data[attr]);
  const avg = a?.avg || [];
  if (app.chart) {
    app.chart.destroy();
    app.chart = null;
  }
  box.dataset.points = String(avg.length);
  if (!avg.length) {
    box.replaceChildren(el('p', { class: 'muted chart-empty' }, t('chartEmpty')));
    return;
  }
  box.replaceChildren();
  const xs = avg.map((p) => Date.parse(p[1]) / 1000);
  const series = ['avg', 'min', 'max'].map((m) => (a[m] || []).map((p) => p[0]));
  const width = Math.max(260, box.clientWidth || 340);
  const number = (_u, v) => (v == null ? '–' : fmtNumber(v, 2));
  app.chart = new uPlot(
    {
      width,
      height: 200,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
      legend: { show: true },
      cursor: { points: { size: 6 } },
      // The whole range asked for, however much of it has data.
      scales: { x: { time: true, range: () => [Date.parse(from) / 1000, Date.now() / 1000] } },
      axes: [
        { stroke: '#5b6b7c', grid: { stroke: '#eef1f4' }, values: (_u, splits) => splits.map(axisTime) },
        { stroke: '#5b6b7c', grid: { stroke: '#eef1f4' }, size: 50 },
      ],
      series: [
        { label: t('time'), value: (_u, v) => (v == null ? '–' : fmtTime(new Date(v * 1000).toISOString())) },
        { label: t('avg'), stroke: '#14548f', width: 2, value: number },
        { label: t('min'), stroke: '#7fb0d6', width: 1, dash: [4, 3], value: number },
        { label: t('max'), stroke: '#e0812e', width: 1, dash: [4, 3], value: number },
      ],
    },
    [xs, ...series],
    box,
  );
}

// Axis labels in Asia/Ho_Chi_Minh: the hour within a day, the date at midnight.
function axisTime(ts) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: TZ, day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(ts * 1000))
      .map((p) => [p.type, p.value]),
  );
  return parts.hour === '00' && parts.minute === '00' ? `${parts.day}/${parts.month}` : `${parts.hour}:${parts.minute}`;
}

export function closePanel() {
  app.selected = null;
  $('#panel').hidden = true;
  document.body.classList.remove('panel-open');
  resizeMap();
  if (app.chart) {
    app.chart.destroy();
    app.chart = null;
  }
}
