// The operations-centre app at /ioc/: behind a login (the login page shows while
// /auth/v1/me says 401), the province map with communes shaded by an indicator,
// sector layers of clustered markers coloured by state, dashboard tiles, a panel with
// an entity's attributes and history chart, an explorer with export, and the admin
// pages for admins. Live changes come from /ioc/api/stream (server-sent events).
// Times are shown in Asia/Ho_Chi_Minh.
import L from 'leaflet';
import 'leaflet.markercluster';
import uPlot from 'uplot';
import 'leaflet/dist/leaflet.css';
import 'leaflet.markercluster/dist/MarkerCluster.css';
import 'uplot/dist/uPlot.min.css';
import './base.css';
import './style.css';
import { TEXT, LAYER_NAMES, STATE_NAMES, INDICATOR_NAMES, TILE_NAMES, ATTR_NAMES, AUTH_TEXT, ROLE_NAMES } from './i18n.js';
import {
  $, el, escapeHtml, token, TZ, STATES, STATE_RANK, storedLang, saveLang, provinceMap, dotIcon,
  fmtNumber as formatNumber, fmtTime as formatTime, fmtClock as formatClock,
} from './common.js';
import {
  session, getJson, whoAmI, checkSession, initLogin, showLogin, translateLogin, renderUserMenu, ApiError,
} from './auth.js';
import { initAdmin, showAdmin, translateAdmin } from './admin.js';
import { startAlerts, stopAlerts, translateAlerts } from './alerts.js';
import { initScorecard, showScorecard, translateScorecard } from './scorecard.js';

const NGSI = '/ngsi-ld/v1';
const SHADES = ['#e8f1f8', '#b9d4ea', '#7fb0d6', '#3f84bd', '#14548f'];
const PAGE = 50;

const app = {
  lang: storedLang(),
  config: null,
  communes: null,
  communeLayer: null,
  indicator: 'broadband',
  markers: new Map(), // id -> { item, marker }
  clusters: {}, // layer -> cluster group
  visible: new Set(),
  summary: null,
  selected: null,
  chart: null,
  range: '24h',
  chartAttr: null,
  explorer: { offset: 0, total: 0, ids: null },
  feed: [],
};
window.ioc = app; // for the operator's console and the browser tests
app.focus = (id) => focusEntity(id);
app.open = (id) => { openPanel(id, 'entity'); focusEntity(id); };

const t = (key) => TEXT[app.lang][key] ?? TEXT.vi[key] ?? key;
const authText = (key) => AUTH_TEXT[app.lang][key] ?? AUTH_TEXT.vi[key] ?? key;
const fmtNumber = (v, digits = 2) => formatNumber(app.lang, v, digits);
const fmtTime = (iso) => formatTime(app.lang, iso);
const fmtClock = (iso) => formatClock(app.lang, iso);
const itemName = (item) => (app.lang === 'en' && item.nameEn) || item.name;
const communeName = (c) => (app.lang === 'en' && c.nameEn) || c.name;

// ---------- header, language, clock ----------

function applyLanguage() {
  document.documentElement.lang = app.lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of document.querySelectorAll('#app [data-auth]')) e.textContent = authText(e.dataset.auth);
  for (const b of document.querySelectorAll('.lang button')) b.classList.toggle('active', b.dataset.lang === app.lang);
  document.title = `IOC ${t('org')} — ${t('title')}`;
  translateLogin();
  if (session.me) renderUserMenu(ROLE_NAMES);
  translateAdmin();
  translateAlerts();
  translateScorecard();
  if (app.error) showError(app.error);
  if (app.config) {
    renderIndicatorSelect();
    renderLayers();
    renderLegend();
    renderTiles();
    renderFeed();
    shadeCommunes();
    fillExplorerSelects();
    if (app.explorerLoaded) runSearch();
    if (app.selected) openPanel(app.selected.id, app.selected.kind, false);
  }
}

function tick() {
  $('#clock').textContent = new Intl.DateTimeFormat(app.lang === 'vi' ? 'vi-VN' : 'en-GB', {
    timeZone: TZ, weekday: 'short', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).format(new Date());
}

// ---------- map ----------

let map;

function initMap() {
  map = provinceMap('map', app.config);
}

function indicatorValues() {
  return app.communes.features.map((f) => f.properties[app.indicator]).filter((v) => typeof v === 'number');
}

function breaks() {
  const values = indicatorValues().sort((a, b) => a - b);
  if (!values.length) return [];
  const q = (p) => values[Math.min(values.length - 1, Math.floor(p * values.length))];
  const cuts = [q(0.2), q(0.4), q(0.6), q(0.8)];
  return [values[0], ...cuts, values[values.length - 1]];
}

function shadeOf(v, b) {
  if (typeof v !== 'number' || !b.length) return null;
  for (let i = 1; i < b.length - 1; i++) if (v < b[i]) return SHADES[i - 1];
  return SHADES[SHADES.length - 1];
}

function shadeCommunes() {
  if (!app.communeLayer) return;
  const b = breaks();
  app.communeLayer.setStyle((f) => {
    const fill = shadeOf(f.properties[app.indicator], b);
    return { color: '#51657a', weight: 0.8, fillColor: fill || '#d9dde3', fillOpacity: fill ? 0.75 : 0.45, dashArray: fill ? null : '2 3' };
  });
  app.communeLayer.eachLayer((l) => l.setTooltipContent(communeTooltip(l.feature.properties)));
  renderLegend();
}

function communeTooltip(p) {
  const v = p[app.indicator];
  const value = typeof v === 'number' ? fmtNumber(v, 1) : t('noData');
  return `<b>${escapeHtml(communeName(p))}</b><br>${escapeHtml(INDICATOR_NAMES[app.lang][app.indicator])}: ${escapeHtml(value)}`;
}

function drawCommunes() {
  if (app.communeLayer) app.communeLayer.remove();
  app.communeLayer = L.geoJSON(app.communes, {
    pane: 'communes',
    onEachFeature: (f, layer) => {
      layer.bindTooltip(communeTooltip(f.properties), { sticky: true });
      layer.on('click', () => openPanel(f.properties.id, 'commune'));
      layer.on('add', () => layer.getElement()?.setAttribute('data-commune', f.properties.code));
    },
  }).addTo(map);
  if (!app.fitted) { map.fitBounds(app.communeLayer.getBounds(), { padding: [10, 10] }); app.fitted = true; }
  app.communeLayer.eachLayer((l) => l.getElement()?.setAttribute('data-commune', l.feature.properties.code));
  shadeCommunes();
}

function markerIcon(item) {
  return dotIcon(item, itemName(item));
}

function clusterIcon(cluster, layer) {
  let worst = 'normal';
  for (const m of cluster.getAllChildMarkers()) {
    if (STATE_RANK[m.options.state] > STATE_RANK[worst]) worst = m.options.state;
  }
  const n = cluster.getChildCount();
  const size = n < 10 ? 30 : n < 100 ? 36 : 44;
  return L.divIcon({ html: `<span class="cl st-${token(worst)} ly-${token(layer)}">${Number(n)}</span>`, className: 'cluster', iconSize: [size, size] });
}

function ensureCluster(layer) {
  if (!app.clusters[layer]) {
    app.clusters[layer] = L.markerClusterGroup({
      iconCreateFunction: (c) => clusterIcon(c, layer), showCoverageOnHover: false, maxClusterRadius: 45, chunkedLoading: true,
      disableClusteringAtZoom: 15,
    });
  }
  return app.clusters[layer];
}

function upsertMarker(item) {
  if (!item.layer || !item.position) return;
  const known = app.markers.get(item.id);
  const latlng = [item.position[1], item.position[0]];
  if (known) {
    const before = known.item;
    known.item = item;
    known.marker.options.state = item.state;
    known.marker.setIcon(markerIcon(item));
    if (before.position[0] !== item.position[0] || before.position[1] !== item.position[1]) known.marker.setLatLng(latlng);
    if (before.state !== item.state) app.clusters[item.layer]?.refreshClusters(known.marker);
    return;
  }
  const marker = L.marker(latlng, { icon: markerIcon(item), state: item.state, keyboard: false });
  marker.on('click', () => openPanel(item.id, 'entity'));
  app.markers.set(item.id, { item, marker });
  ensureCluster(item.layer).addLayer(marker);
}

function removeMarker(id) {
  const known = app.markers.get(id);
  if (!known) return;
  app.clusters[known.item.layer]?.removeLayer(known.marker);
  app.markers.delete(id);
}

async function loadMarkers() {
  const data = await getJson('/ioc/api/markers');
  const seen = new Set();
  const byLayer = {};
  for (const item of data.markers) {
    seen.add(item.id);
    if (app.markers.has(item.id)) { upsertMarker(item); continue; }
    const marker = L.marker([item.position[1], item.position[0]], { icon: markerIcon(item), state: item.state, keyboard: false });
    marker.on('click', () => openPanel(item.id, 'entity'));
    app.markers.set(item.id, { item, marker });
    (byLayer[item.layer] ||= []).push(marker);
  }
  for (const [layer, list] of Object.entries(byLayer)) ensureCluster(layer).addLayers(list);
  for (const id of [...app.markers.keys()]) if (!seen.has(id)) removeMarker(id);
  for (const layer of app.config.layers.map((l) => l.id)) {
    const group = ensureCluster(layer);
    if (app.visible.has(layer) && !map.hasLayer(group)) group.addTo(map);
  }
}

function focusEntity(id) {
  const known = app.markers.get(id);
  if (!known) return false;
  const layer = known.item.layer;
  if (!app.visible.has(layer)) toggleLayer(layer, true);
  // Close enough to see the place, then as close as its cluster needs.
  map.setView(known.marker.getLatLng(), Math.max(map.getZoom(), 12), { animate: false });
  app.clusters[layer].zoomToShowLayer(known.marker, () => {});
  return true;
}

// ---------- side: indicator, layers, legend, tiles, feed ----------

function renderIndicatorSelect() {
  const s = $('#indicator');
  s.replaceChildren(...app.config.indicators.map((i) =>
    el('option', { value: i, selected: i === app.indicator }, INDICATOR_NAMES[app.lang][i])));
}

function renderLayers() {
  const box = $('#layers');
  const counts = app.summary?.layers || {};
  box.replaceChildren(...app.config.layers.map(({ id }) => {
    const n = Object.values(counts[id] || {}).reduce((a, b) => a + b, 0);
    const bad = Object.entries(counts[id] || {}).filter(([s]) => s !== 'normal').reduce((a, [, b]) => a + b, 0);
    return el('label', { class: 'layer', 'data-layer': id },
      el('input', { type: 'checkbox', checked: app.visible.has(id), onchange: (e) => toggleLayer(id, e.target.checked) }),
      el('span', { class: `swatch ly-${id}` }),
      el('span', { class: 'layer-name' }, LAYER_NAMES[app.lang][id]),
      el('span', { class: 'layer-count' }, n ? fmtNumber(n, 0) : ''),
      bad ? el('span', { class: 'layer-bad', title: t('alertsHere') }, fmtNumber(bad, 0)) : null);
  }));
}

function toggleLayer(id, on) {
  if (on) app.visible.add(id); else app.visible.delete(id);
  const group = ensureCluster(id);
  if (on && !map.hasLayer(group)) group.addTo(map);
  if (!on && map.hasLayer(group)) group.remove();
  const box = $(`#layers [data-layer="${id}"] input`);
  if (box) box.checked = on;
  localStorage.setItem('ioc.layers', JSON.stringify([...app.visible]));
}

function renderLegend() {
  const b = breaks();
  const rows = [];
  rows.push(el('div', { class: 'legend-title' }, INDICATOR_NAMES[app.lang][app.indicator]));
  if (b.length) {
    for (let i = 0; i < SHADES.length; i++) {
      rows.push(el('div', { class: 'legend-row' }, el('i', { style: `background:${SHADES[i]}` }),
        `${fmtNumber(b[i], 1)} – ${fmtNumber(b[i + 1], 1)}`));
    }
  }
  rows.push(el('div', { class: 'legend-row' }, el('i', { class: 'nodata' }), t('noData')));
  rows.push(el('div', { class: 'legend-title states' }, t('legendStates')));
  rows.push(el('div', { class: 'legend-states' }, ...STATES.map((s) =>
    el('span', { class: 'legend-state' }, el('span', { class: `mk st-${s}` }), STATE_NAMES[app.lang][s]))));
  $('#legend').replaceChildren(...rows);
}

function renderTiles() {
  const s = app.summary;
  if (!s) return;
  const tiles = s.tiles.map((tile) => el('button', {
    class: `tile ${tile.count ? 'hot' : ''} tile-${tile.id}`, 'data-tile': tile.id,
    onclick: () => showTile(tile),
  }, el('span', { class: 'tile-count' }, fmtNumber(tile.count, 0)), el('span', { class: 'tile-name' }, TILE_NAMES[app.lang][tile.id])));
  $('#tiles').replaceChildren(
    el('div', { class: 'tiles-head' }, t('entitiesTotal')(fmtNumber(s.entities, 0), fmtNumber(s.demo, 0))),
    el('div', { class: 'tile-grid' }, ...tiles));
}

function showTile(tile) {
  if (!tile.count) return;
  if (tile.count === 1) {
    openPanel(tile.entities[0].id, 'entity');
    focusEntity(tile.entities[0].id);
    return;
  }
  $('#search').reset();
  app.explorer.ids = tile.entities.map((e) => e.id);
  app.explorer.offset = 0;
  showView('explorer');
  runSearch();
}

let summaryTimer = null;
function refreshSummarySoon() {
  if (summaryTimer) return;
  summaryTimer = setTimeout(async () => {
    summaryTimer = null;
    try { app.summary = await getJson('/ioc/api/summary'); renderTiles(); renderLayers(); } catch (e) { console.warn(e); }
  }, 800);
}

function renderFeed() {
  const list = $('#feed');
  if (!app.feed.length) { list.replaceChildren(el('li', { class: 'muted' }, t('feedEmpty'))); return; }
  list.replaceChildren(...app.feed.map((f) => el('li', { 'data-id': f.item.id, onclick: () => { openPanel(f.item.id, 'entity'); focusEntity(f.item.id); } },
    el('span', { class: `mk st-${f.item.state}` }),
    el('span', { class: 'feed-name' }, itemName(f.item)),
    el('span', { class: 'feed-what' }, f.attrs.map((a) => ATTR_NAMES[app.lang][a] || a).join(', ')),
    el('time', {}, fmtClock(f.at)))));
}

// ---------- live ----------

function connectLive() {
  const live = $('#live');
  const source = new EventSource('/ioc/api/stream');
  source.addEventListener('hello', () => { live.dataset.state = 'on'; live.lastElementChild.textContent = t('live'); });
  source.addEventListener('items', (e) => {
    const data = JSON.parse(e.data);
    for (const item of data.items) {
      upsertMarker(item);
      const attrs = data.attrs[item.id] || [];
      if (item.layer) app.feed.unshift({ item, attrs, at: data.at });
    }
    for (const id of data.removed) removeMarker(id);
    app.feed = app.feed.slice(0, 8);
    renderFeed();
    refreshSummarySoon();
    if (data.communes) reloadCommunes();
    if (app.selected && (data.attrs[app.selected.id] || data.removed.includes(app.selected.id))) {
      refreshPanel(app.selected.id);
    }
  });
  source.addEventListener('resync', () => { loadMarkers(); refreshSummarySoon(); reloadCommunes(); });
  source.onerror = () => {
    live.dataset.state = 'off';
    live.lastElementChild.textContent = t('offlineLive');
    // The stream does not say why it failed: a session that ended brings the login back.
    checkSession();
  };
  app.source = source;
}

let communesTimer = null;
function reloadCommunes() {
  clearTimeout(communesTimer);
  communesTimer = setTimeout(async () => {
    app.communes = await getJson('/ioc/api/communes');
    const byId = new Map(app.communes.features.map((f) => [f.properties.id, f.properties]));
    app.communeLayer.eachLayer((l) => { l.feature.properties = byId.get(l.feature.properties.id) || l.feature.properties; });
    shadeCommunes();
  }, 2000);
}

// ---------- panel ----------

function shortValue(attr) {
  const v = attr.value ?? attr.object ?? attr.languageMap ?? attr.vocab;
  if (attr.type === 'GeoProperty') {
    return v?.type === 'Point' ? v.coordinates.map((x) => fmtNumber(x, 5)).join(', ') : v?.type || '';
  }
  if (attr.type === 'LanguageProperty' && v && typeof v === 'object') return v[app.lang] || v.vi || Object.values(v)[0];
  if (typeof v === 'number') return fmtNumber(v, 3) + (attr.unitCode ? ` ${unitName(attr.unitCode)}` : '');
  if (typeof v === 'boolean') return v ? '✓' : '✗';
  if (v && typeof v === 'object') {
    if (v.addressLocality || v.streetAddress) return [v.streetAddress, v.addressLocality, v.addressRegion].filter(Boolean).join(', ');
    const text = JSON.stringify(v);
    return text.length > 120 ? text.slice(0, 117) + '…' : text;
  }
  return String(v ?? '');
}

function unitName(code) {
  return { MTR: 'm', CEL: '°C', KMH: 'km/h', GQ: 'µg/m³', MMT: 'mm', MTS: 'm/s', KWH: 'kWh', KWT: 'kW', P1: '%', MTQ: 'm³', KMK: 'km²', MTK: 'm²', DD: '°', A97: 'hPa' }[code] || code;
}

const HIDDEN = new Set(['displayBoundary', 'source', 'formedFrom', 'refAdministrativeArea', 'containedInPlace']);

async function openPanel(id, kind, resetChart = true) {
  app.selected = { id, kind };
  const panel = $('#panel');
  if (panel.hidden) {
    panel.hidden = false;
    document.body.classList.add('panel-open');
    map.invalidateSize();
  }
  const body = $('#panel-body');
  let entity;
  try {
    const pick = kind === 'commune' ? '&pick=id,type,name,code,kind,areaKm2,alternateName,population' : '';
    entity = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}?options=sysAttrs${pick}`);
  } catch (e) {
    body.replaceChildren(el('p', { class: 'muted' }, t('noResult')));
    return;
  }
  if (app.selected?.id !== id) return;
  const item = app.markers.get(id)?.item;
  const name = entity.name ? shortValue(entity.name) : id;
  const rows = [];
  let modified = null;
  const numeric = [];
  for (const [k, attr] of Object.entries(entity)) {
    if (['id', 'type', '@context', 'name'].includes(k) || HIDDEN.has(k) || !attr || typeof attr !== 'object') continue;
    const a = Array.isArray(attr) ? attr[0] : attr;
    if (a.observedAt && (!modified || a.observedAt > modified)) modified = a.observedAt;
    if (typeof a.value === 'number' && a.observedAt) numeric.push(k);
    rows.push(el('tr', { 'data-attr': k }, el('th', {}, ATTR_NAMES[app.lang][k] || k),
      el('td', {}, el('span', { class: 'value' }, shortValue(a)),
        el('span', { class: 'when' }, a.observedAt ? fmtTime(a.observedAt) : ''))));
  }
  const head = [
    el('div', { class: 'panel-type' }, entity.type,
      item?.demo || /demo/.test(id) ? el('span', { class: 'badge demo' }, t('demo')) : null,
      item ? el('span', { class: `badge state st-${item.state}` }, STATE_NAMES[app.lang][item.state]) : null),
    el('h2', { class: 'panel-title' }, name),
    el('div', { class: 'panel-id' }, id),
  ];
  modified = modified || entity.modifiedAt;
  if (modified) head.push(el('div', { class: 'panel-updated' }, `${t('lastUpdate')}: ${fmtTime(modified)}`));
  const parts = [...head];
  if (kind === 'commune') {
    const p = app.communes.features.find((f) => f.properties.id === id)?.properties || {};
    parts.push(el('div', { class: 'commune-figures' },
      figure(t('entitiesHere'), p.entities), figure(t('alertsHere'), p.alerts),
      figure(INDICATOR_NAMES[app.lang].broadband, p.broadband), figure(INDICATOR_NAMES[app.lang]['5g'], p['5g'])),
    el('button', { class: 'button', onclick: () => { app.explorer.ids = null; showView('explorer'); const f = $('#search'); f.commune.value = id; app.explorer.offset = 0; runSearch(); } }, t('showInExplorer')));
  }
  if (numeric.length) {
    if (resetChart || !numeric.includes(app.chartAttr)) app.chartAttr = preferredAttr(numeric);
    parts.push(el('h3', {}, t('history')),
      el('div', { class: 'chart-controls' },
        el('select', { id: 'chart-attr', onchange: (e) => { app.chartAttr = e.target.value; drawChart(id); } },
          numeric.map((n) => el('option', { value: n, selected: n === app.chartAttr }, ATTR_NAMES[app.lang][n] || n))),
        el('div', { class: 'ranges' }, ['24h', '7d', '30d'].map((r) => el('button', {
          class: r === app.range ? 'active' : '', 'data-range': r,
          onclick: () => { app.range = r; drawChart(id); for (const b of document.querySelectorAll('.ranges button')) b.classList.toggle('active', b.dataset.range === r); },
        }, t(`range${r}`))))),
      el('div', { id: 'chart', class: 'chart' }));
  }
  parts.push(el('h3', {}, t('attributes')), el('table', { class: 'attrs' }, el('tbody', {}, rows)));
  body.replaceChildren(...parts);
  if (numeric.length) drawChart(id);
}

// A live change of the open entity: its values, time and state in place, and the
// chart's data, without rebuilding the panel.
async function refreshPanel(id) {
  let entity;
  try { entity = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}`); } catch (e) { return; }
  if (app.selected?.id !== id) return;
  let modified = null;
  for (const [k, attr] of Object.entries(entity)) {
    if (!attr || typeof attr !== 'object' || HIDDEN.has(k)) continue;
    const a = Array.isArray(attr) ? attr[0] : attr;
    if (a.observedAt && (!modified || a.observedAt > modified)) modified = a.observedAt;
    const row = document.querySelector(`#panel tr[data-attr="${CSS.escape(k)}"]`);
    if (!row) continue;
    row.querySelector('.value').textContent = shortValue(a);
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

const RANGES = { '24h': [86400, 'PT15M'], '7d': [7 * 86400, 'PT1H'], '30d': [30 * 86400, 'P1D'] };

async function drawChart(id) {
  const box = $('#chart');
  if (!box) return;
  const attr = app.chartAttr;
  const [span, period] = RANGES[app.range];
  const from = new Date(Date.now() - span * 1000).toISOString();
  const url = `${NGSI}/temporal/entities/${encodeURIComponent(id)}?attrs=${attr}&options=aggregatedValues` +
    `&aggrMethods=avg,min,max&aggrPeriodDuration=${period}&timerel=after&timeAt=${encodeURIComponent(from)}`;
  let data;
  try { data = await getJson(url); } catch (e) { data = {}; }
  if (app.selected?.id !== id || app.chartAttr !== attr) return;
  const a = Array.isArray(data[attr]) ? data[attr][0] : data[attr];
  const avg = a?.avg || [];
  if (app.chart) { app.chart.destroy(); app.chart = null; }
  box.dataset.points = String(avg.length);
  if (!avg.length) { box.replaceChildren(el('p', { class: 'muted chart-empty' }, t('chartEmpty'))); return; }
  box.replaceChildren();
  const xs = avg.map((p) => Date.parse(p[1]) / 1000);
  const series = ['avg', 'min', 'max'].map((m) => (a[m] || []).map((p) => p[0]));
  const width = Math.max(260, box.clientWidth || 340);
  app.chart = new uPlot({
    width, height: 200,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
    legend: { show: true },
    cursor: { points: { size: 6 } },
    // The whole range asked for, however much of it has data.
    scales: { x: { time: true, range: () => [Date.parse(from) / 1000, Date.now() / 1000] } },
    axes: [{ stroke: '#5b6b7c', grid: { stroke: '#eef1f4' }, values: (u, splits) => splits.map(axisTime) }, { stroke: '#5b6b7c', grid: { stroke: '#eef1f4' }, size: 50 }],
    series: [
      { label: t('time'), value: (u, v) => (v == null ? '–' : fmtTime(new Date(v * 1000).toISOString())) },
      { label: t('avg'), stroke: '#14548f', width: 2, value: (u, v) => (v == null ? '–' : fmtNumber(v, 2)) },
      { label: t('min'), stroke: '#7fb0d6', width: 1, dash: [4, 3], value: (u, v) => (v == null ? '–' : fmtNumber(v, 2)) },
      { label: t('max'), stroke: '#e0812e', width: 1, dash: [4, 3], value: (u, v) => (v == null ? '–' : fmtNumber(v, 2)) },
    ],
  }, [xs, ...series], box);
}

// Axis labels in Asia/Ho_Chi_Minh: the hour within a day, the date at midnight.
function axisTime(ts) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: TZ, day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(ts * 1000)).map((p) => [p.type, p.value]));
  return parts.hour === '00' && parts.minute === '00' ? `${parts.day}/${parts.month}` : `${parts.hour}:${parts.minute}`;
}

function closePanel() {
  app.selected = null;
  $('#panel').hidden = true;
  document.body.classList.remove('panel-open');
  map.invalidateSize();
  if (app.chart) { app.chart.destroy(); app.chart = null; }
}

// ---------- explorer ----------

function showView(name) {
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === `view-${name}`);
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === name);
  if (name === 'map') setTimeout(() => map.invalidateSize(), 0);
  if (name === 'explorer' && !app.explorerLoaded) { app.explorerLoaded = true; runSearch(); }
  if (name === 'admin') showAdmin();
  if (name === 'scorecard') showScorecard();
}

function fillExplorerSelects() {
  const f = $('#search');
  const keep = (s) => s.value;
  const typeValue = keep(f.type); const communeValue = keep(f.commune); const layerValue = keep(f.layer); const stateValue = keep(f.state);
  f.type.replaceChildren(el('option', { value: '' }, t('allTypes')), ...(app.types || []).map((ty) => el('option', { value: ty, selected: ty === typeValue }, ty)));
  const communes = [...app.communes.features].map((x) => x.properties).sort((a, b) => communeName(a).localeCompare(communeName(b), app.lang));
  f.commune.replaceChildren(el('option', { value: '' }, t('allCommunes')), ...communes.map((c) => el('option', { value: c.id, selected: c.id === communeValue }, communeName(c))));
  f.layer.replaceChildren(el('option', { value: '' }, t('allLayers')), ...app.config.layers.map((l) => el('option', { value: l.id, selected: l.id === layerValue }, LAYER_NAMES[app.lang][l.id])));
  f.state.replaceChildren(el('option', { value: '' }, t('allStates')), ...STATES.map((s) => el('option', { value: s, selected: s === stateValue }, STATE_NAMES[app.lang][s])));
}

function searchParams() {
  const f = $('#search');
  const p = new URLSearchParams();
  for (const k of ['q', 'type', 'commune', 'layer', 'state']) if (f[k].value) p.set(k, f[k].value);
  if (app.explorer.ids) p.set('id', app.explorer.ids.join(','));
  return p;
}

async function runSearch() {
  const p = searchParams();
  $('#export-csv').href = `/ioc/api/export?${p}&format=csv`;
  $('#export-geojson').href = `/ioc/api/export?${p}&format=geojson`;
  const note = $('#filter-note');
  note.hidden = !app.explorer.ids;
  if (app.explorer.ids) {
    note.replaceChildren(t('filterIds')(app.explorer.ids.length), ' ',
      el('button', { class: 'link', onclick: () => { app.explorer.ids = null; runSearch(); } }, t('clearFilter')));
  }
  p.set('limit', PAGE);
  p.set('offset', app.explorer.offset);
  // Only the latest search is shown, whichever answer arrives last.
  const seq = (app.explorer.seq = (app.explorer.seq || 0) + 1);
  const data = await getJson(`/ioc/api/entities?${p}`);
  if (seq !== app.explorer.seq) return;
  app.explorer.total = data.total;
  const rows = data.items.map((i) => el('tr', { 'data-id': i.id, onclick: () => openFromExplorer(i) },
    el('td', {}, itemName(i), i.demo ? el('span', { class: 'badge demo small' }, t('demo')) : null),
    el('td', {}, i.type),
    el('td', {}, i.communeName || ''),
    el('td', {}, el('span', { class: `mk st-${i.state}` }), ' ', STATE_NAMES[app.lang][i.state]),
    el('td', { class: 'when' }, fmtTime(i.observedAt || i.modifiedAt))));
  $('#results tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, t('noResult')))]));
  const a = data.total ? data.offset + 1 : 0;
  const b = Math.min(data.offset + data.limit, data.total);
  $('#page-info').textContent = t('pageInfo')(fmtNumber(a, 0), fmtNumber(b, 0), fmtNumber(data.total, 0));
  $('#prev').disabled = data.offset === 0;
  $('#next').disabled = b >= data.total;
}

function openFromExplorer(i) {
  if (i.type === 'AdministrativeArea') {
    showView('map');
    openPanel(i.id, 'commune');
    return;
  }
  showView('map');
  openPanel(i.id, 'entity');
  focusEntity(i.id);
}

// ---------- start ----------

function showError(error) {
  app.error = error;
  const box = $('#app-error');
  box.textContent = error instanceof ApiError && error.status === 403
    ? authText('noAccess')
    : `${authText('loadFailed')}: ${error.message}`;
  box.hidden = false;
}

async function start() {
  tick();
  setInterval(tick, 1000);
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view));
  $('#panel-close').addEventListener('click', closePanel);
  $('#indicator').addEventListener('change', (e) => { app.indicator = e.target.value; shadeCommunes(); });
  $('#search').addEventListener('submit', (e) => { e.preventDefault(); app.explorer.offset = 0; runSearch(); });
  $('#prev').addEventListener('click', () => { app.explorer.offset = Math.max(0, app.explorer.offset - PAGE); runSearch(); });
  $('#next').addEventListener('click', () => { app.explorer.offset += PAGE; runSearch(); });

  app.config = await getJson('/ioc/api/config');
  const stored = JSON.parse(localStorage.getItem('ioc.layers') || 'null');
  app.visible = new Set(Array.isArray(stored) ? stored : ['environment', 'water', 'transport', 'tourism', 'health']);
  initMap();
  connectLive();
  startAlerts(() => app.lang);
  const [communes, summary, types] = await Promise.all([
    getJson('/ioc/api/communes'), getJson('/ioc/api/summary'), getJson(`${NGSI}/types`).catch(() => ({ typeList: [] })),
  ]);
  app.communes = communes;
  app.summary = summary;
  app.types = (types.typeList || []).slice().sort();
  drawCommunes();
  await loadMarkers();
  applyLanguage();
  window.iocReadyAt = performance.now();
  document.body.dataset.ready = 'true';
}

/** Signed in: the app, with the user's menu and, for admins, the admin pages. */
function enter(me) {
  session.me = me;
  session.expired = false;
  document.body.dataset.view = 'app';
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('.tab[data-view="admin"]').hidden = me.role !== 'admin';
  renderUserMenu(ROLE_NAMES);
  app.started = true;
  start().catch((e) => {
    console.error(e);
    if (!session.expired) showError(e);
    document.body.dataset.ready = 'error';
  });
}

async function boot() {
  for (const b of document.querySelectorAll('.lang button')) {
    b.addEventListener('click', () => { app.lang = b.dataset.lang; saveLang(app.lang); applyLanguage(); });
  }
  // A login after the session ended starts a fresh page; the first one starts the app.
  initLogin(() => app.lang, (me) => (app.started ? location.reload() : enter(me)));
  initAdmin(() => app.lang);
  initScorecard(() => app.lang);
  session.onExpired = () => { app.source?.close(); stopAlerts(); };
  applyLanguage();
  let me = null;
  try { me = await whoAmI(); } catch (e) { console.warn(e); }
  if (me) enter(me);
  else showLogin();
}

boot();
