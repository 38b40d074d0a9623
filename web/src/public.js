// The province's public page at /: the map of the 78 communes with the open sensor
// layers — river gauges with their alarm state, air quality, weather — and the citizen
// reports of the last 30 days, lists of the stations and of the reports with the last
// 12 months' figures, the open data portal's newest datasets, and a note about the
// data. No login: it reads public endpoints only (/public/api, /reports/v1/public/…,
// the CKAN API), and reads them again every minute.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './base.css';
import './public.css';
import { $, dotIcon, el, escapeHtml, fmtClock, fmtNumber, fmtShort, markLangButton, onLangButtons, provinceMap, STATES, storedLang, token } from './common.js';
import { PUBLIC_TEXT, STATE_NAMES } from './i18n.js';
import {
  FIRST_SHOWN,
  loadOpenData,
  loadReports,
  mappable,
  nextShown,
  openDataBlock,
  reportFigures,
  reportIcon,
  reportPopup,
  reportRows,
} from './public-services.js';
import { loadPublicScorecard, renderPublicScorecard } from './scorecard-public.js';

const LAYERS = ['water', 'air', 'weather'];
/** The map's chips: the sensor layers, then the citizen reports. */
const REPORTS = 'reports';
const CHIPS = [...LAYERS, REPORTS];
const REFRESH_MS = 60_000;
const AQI_COLOURS = ['#2e9e5b', '#f0c419', '#f2812f', '#e0452f', '#8e3b9c', '#7e0023'];

const page = {
  lang: storedLang(),
  config: null,
  communes: null,
  markers: [],
  generatedAt: null,
  visible: new Set(CHIPS),
  onMap: new Map(), // id -> Leaflet marker
  groups: {}, // layer -> layer group
  reports: null, // the last 30 days' reports, null until loaded
  categories: new Map(),
  year: null, // the last 12 months' figures
  shownReports: FIRST_SHOWN,
  reportMarkers: new Map(), // service_request_id -> Leaflet marker
  openData: null,
};
window.dothiPublic = page; // for the browser tests

const t = (key) => PUBLIC_TEXT[page.lang][key] ?? PUBLIC_TEXT.vi[key] ?? key;
const num = (v, d = 1) => fmtNumber(page.lang, v, d);
const nameOf = (m) => (page.lang === 'en' && m.nameEn) || m.name;
const communeOf = (p) => (page.lang === 'en' && p.nameEn) || p.name;

/** Vietnam's AQI category: 0 good (up to 50), 1 moderate, 2 poor, 3 bad, 4 very bad,
 * 5 hazardous (over 300). */
function aqiClass(aqi) {
  const k = [50, 100, 150, 200, 300].findIndex((limit) => aqi <= limit);
  return k === -1 ? 5 : k;
}

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

// ---------- words ----------

function applyLanguage() {
  document.documentElement.lang = page.lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll('[data-layer-title]')) e.textContent = t('layers')[e.dataset.layerTitle];
  markLangButton(page.lang);
  document.title = `${t('org')} — ${t('title')}`;
  $('#about-text').replaceChildren(...t('about').map((p) => el('p', {}, p)));
  renderStates();
  renderPublicScorecard($('#plan-scorecard'), page.lang);
  if (page.config) render();
  renderReports();
  renderOpenData();
  if (page.communeLayer) page.communeLayer.eachLayer((l) => l.setTooltipContent(escapeHtml(communeOf(l.feature.properties))));
}

// ---------- map ----------

let map;

function drawCommunes() {
  page.communeLayer = L.geoJSON(page.communes, {
    pane: 'communes',
    style: { color: '#51657a', weight: 0.8, fillColor: '#e8f1f8', fillOpacity: 0.7 },
    onEachFeature: (f, layer) => {
      layer.bindTooltip(escapeHtml(communeOf(f.properties)), { sticky: true });
      layer.on('add', () => layer.getElement()?.setAttribute('data-commune', f.properties.code));
    },
  }).addTo(map);
  page.communeLayer.eachLayer((l) => l.getElement()?.setAttribute('data-commune', l.feature.properties.code));
  map.fitBounds(page.communeLayer.getBounds(), { padding: [6, 6] });
}

function readingText(m) {
  if (typeof m.reading !== 'number') return t('noReading');
  if (m.layer === 'water') return `${num(m.reading, 2)} m`;
  if (m.layer === 'air') return `AQI ${num(m.reading, 0)} · ${t('aqi')[aqiClass(m.reading)]}`;
  return `${num(m.reading, 1)} °C`;
}

function popup(m) {
  return el(
    'div',
    { class: 'popup', 'data-id': m.id },
    el('b', {}, nameOf(m)),
    m.communeName ? el('div', { class: 'muted' }, m.communeName) : null,
    el('div', { class: 'popup-reading' }, readingText(m)),
    el('div', {}, el('span', { class: `badge st-${token(m.state)}` }, STATE_NAMES[page.lang][m.state] || m.state)),
    m.observedAt ? el('div', { class: 'muted small' }, `${t('observed')}: ${fmtShort(page.lang, m.observedAt)}`) : null,
    m.demo ? el('div', { class: 'demo-tag' }, t('demo')) : null,
  );
}

function placeMarkers() {
  const seen = new Set();
  for (const m of page.markers) {
    seen.add(m.id);
    const latlng = [m.position[1], m.position[0]];
    let marker = page.onMap.get(m.id);
    if (!marker) {
      marker = L.marker(latlng, { keyboard: false });
      page.onMap.set(m.id, marker);
      page.groups[m.layer] ??= L.layerGroup();
      page.groups[m.layer].addLayer(marker);
    } else {
      marker.setLatLng(latlng);
    }
    marker.setIcon(dotIcon(m, nameOf(m)));
    marker.unbindPopup();
    marker.bindPopup(() => popup(m));
  }
  for (const [id, marker] of page.onMap) {
    if (!seen.has(id)) {
      for (const g of Object.values(page.groups)) g.removeLayer(marker);
      page.onMap.delete(id);
    }
  }
  for (const layer of CHIPS) {
    page.groups[layer] ??= L.layerGroup();
    const group = page.groups[layer];
    if (page.visible.has(layer) && !map.hasLayer(group)) group.addTo(map);
    if (!page.visible.has(layer) && map.hasLayer(group)) group.remove();
  }
}

/** The reports' markers, drawn again from the last list read. */
function placeReportMarkers() {
  page.groups[REPORTS] ??= L.layerGroup();
  page.groups[REPORTS].clearLayers();
  page.reportMarkers.clear();
  for (const r of mappable(page.reports)) {
    // Under the stations, whose state matters more at a glance.
    const marker = L.marker([r.lat, r.long], { keyboard: false, zIndexOffset: -1000, icon: reportIcon(L, r, r.service_name) });
    marker.bindPopup(() => reportPopup(r, wordsContext()));
    page.reportMarkers.set(r.service_request_id, marker);
    page.groups[REPORTS].addLayer(marker);
  }
}

function toggleLayer(layer) {
  if (page.visible.has(layer)) page.visible.delete(layer);
  else page.visible.add(layer);
  placeMarkers();
  renderChips();
}

/** Shows a report on the map with its popup. */
function showReport(id) {
  const marker = page.reportMarkers.get(id);
  if (!marker) return;
  if (!page.visible.has(REPORTS)) toggleLayer(REPORTS);
  $('#map').scrollIntoView({ behavior: 'smooth', block: 'center' });
  map.setView(marker.getLatLng(), Math.max(map.getZoom(), 13), { animate: false });
  marker.openPopup();
}
page.showReport = showReport;

/** Shows a station on the map with its popup. */
function showOnMap(id) {
  const marker = page.onMap.get(id);
  const m = page.markers.find((x) => x.id === id);
  if (!marker || !m) return;
  if (!page.visible.has(m.layer)) toggleLayer(m.layer);
  $('#map').scrollIntoView({ behavior: 'smooth', block: 'center' });
  map.setView(marker.getLatLng(), Math.max(map.getZoom(), 10), { animate: false });
  marker.openPopup();
}
page.show = showOnMap;
page.refresh = () => refresh();

// ---------- lists ----------

const ofLayer = (layer) => page.markers.filter((m) => m.layer === layer);

const chipCount = (layer) => (layer === REPORTS ? mappable(page.reports).length : ofLayer(layer).length);

function renderChips() {
  $('#layer-chips').replaceChildren(
    ...CHIPS.map((layer) =>
      el(
        'button',
        {
          type: 'button',
          class: `chip ly-${layer}${page.visible.has(layer) ? ' on' : ''}`,
          'data-layer': layer,
          'aria-pressed': String(page.visible.has(layer)),
          onclick: () => toggleLayer(layer),
        },
        el('span', { class: 'swatch' }),
        t('layers')[layer],
        el('span', { class: 'chip-count' }, chipCount(layer)),
      ),
    ),
  );
}

function renderStates() {
  $('#states').replaceChildren(...STATES.map((s) => el('span', { class: 'state' }, el('span', { class: `mk st-${s}` }), STATE_NAMES[page.lang][s])));
}

function renderSummary() {
  const water = ofLayer('water');
  const above = water.filter((m) => (m.alarmLevel || 0) > 0);
  const air = ofLayer('air').filter((m) => typeof m.reading === 'number' && m.state !== 'offline');
  const worst = air.reduce((w, m) => (!w || m.reading > w.reading ? m : w), null);
  const temps = ofLayer('weather')
    .filter((m) => typeof m.reading === 'number' && m.state !== 'offline')
    .map((m) => m.reading);
  const card = (layer, big, line, hot) =>
    el(
      'button',
      {
        type: 'button',
        class: `summary-card ly-${layer}${hot ? ' hot' : ''}`,
        'data-layer': layer,
        onclick: () => document.getElementById(layer === 'water' ? 'gauges' : layer).scrollIntoView({ behavior: 'smooth' }),
      },
      el('span', { class: 'summary-title' }, t('layers')[layer]),
      el('span', { class: 'summary-big' }, big),
      el('span', { class: 'summary-line' }, line),
    );
  $('#summary').replaceChildren(
    card('water', t('stations')(water.length), above.length ? t('aboveAlarm')(above.length) : t('noneAbove'), above.length > 0),
    card(
      'air',
      t('stations')(ofLayer('air').length),
      worst ? t('worstAqi')(num(worst.reading, 0), t('aqi')[aqiClass(worst.reading)]) : t('noReading'),
      worst && worst.reading > 150,
    ),
    card(
      'weather',
      t('stations')(ofLayer('weather').length),
      temps.length ? t('tempRange')(num(Math.min(...temps), 1), num(Math.max(...temps), 1)) : t('noReading'),
    ),
  );
}

function stateBadge(m) {
  return el('span', { class: `badge st-${token(m.state)}` }, STATE_NAMES[page.lang][m.state] || m.state);
}

function when(m) {
  return m.observedAt ? el('time', { datetime: m.observedAt }, fmtShort(page.lang, m.observedAt)) : null;
}

function stationRow(m, ...body) {
  return el(
    'li',
    { class: `station st-${token(m.state)}${m.state === 'offline' ? ' offline' : ''}`, 'data-id': m.id },
    el('button', { type: 'button', class: 'station-name', onclick: () => showOnMap(m.id) }, nameOf(m)),
    m.communeName ? el('span', { class: 'station-place' }, m.communeName) : null,
    ...body,
    el('span', { class: 'station-when' }, when(m)),
  );
}

/** A gauge's level against its alarm levels, on one scale. */
function levelBar(m) {
  const levels = (m.alarmLevels || []).map((v) => (typeof v === 'number' ? v : null));
  const known = levels.filter((v) => v !== null);
  if (!known.length || typeof m.reading !== 'number') return null;
  const top = Math.max(...known, m.reading) * 1.12;
  const bottom = Math.min(0, m.reading);
  const at = (v) => `${Math.max(0, Math.min(100, ((v - bottom) / (top - bottom)) * 100))}%`;
  const fill = el('span', { class: 'bar-fill' });
  fill.style.width = at(m.reading);
  const marks = levels.map((v, i) => {
    if (v === null) return null;
    const mark = el('span', { class: `bar-mark a${i + 1}`, title: `${t('alarm')[i]}: ${num(v, 2)} m` }, el('span', {}, t('alarmShort')[i]));
    mark.style.left = at(v);
    return mark;
  });
  return el(
    'div',
    {
      class: 'bar',
      role: 'img',
      'aria-label': levels
        .map((v, i) => (v === null ? '' : `${t('alarm')[i]} ${num(v, 2)} m`))
        .filter(Boolean)
        .join(', '),
    },
    fill,
    marks,
  );
}

function renderLists() {
  const byName = (a, b) => nameOf(a).localeCompare(nameOf(b), page.lang);
  const gauges = ofLayer('water').sort((a, b) => (b.alarmLevel || 0) - (a.alarmLevel || 0) || byName(a, b));
  $('#gauge-list').replaceChildren(
    ...gauges.map((m) =>
      stationRow(
        m,
        el('span', { class: 'station-value' }, typeof m.reading === 'number' ? `${num(m.reading, 2)} m` : t('noReading')),
        stateBadge(m),
        levelBar(m),
      ),
    ),
  );
  const air = ofLayer('air').sort((a, b) => (b.reading ?? -1) - (a.reading ?? -1) || byName(a, b));
  $('#air-list').replaceChildren(
    ...air.map((m) => {
      if (typeof m.reading !== 'number') return stationRow(m, el('span', { class: 'station-value' }, t('noReading')));
      const k = aqiClass(m.reading);
      const chip = el('span', { class: 'aqi-chip', 'data-aqi-class': k }, `${num(m.reading, 0)}`);
      chip.style.background = AQI_COLOURS[k];
      return stationRow(m, el('span', { class: 'station-value' }, chip, ' ', t('aqi')[k]), m.state === 'offline' ? stateBadge(m) : null);
    }),
  );
  const weather = ofLayer('weather').sort(byName);
  $('#weather-list').replaceChildren(
    ...weather.map((m) =>
      stationRow(
        m,
        el('span', { class: 'station-value' }, typeof m.reading === 'number' ? `${num(m.reading, 1)} °C` : t('noReading')),
        m.state === 'offline' ? stateBadge(m) : null,
      ),
    ),
  );
}

function render() {
  renderChips();
  renderSummary();
  renderLists();
  placeMarkers();
  $('#demo-banner').hidden = !page.markers.some((m) => m.demo);
  $('#updated').textContent = page.generatedAt ? t('updated')(fmtClock(page.lang, page.generatedAt)) : t('loading');
}

// ---------- citizen reports and open data ----------

/** What the reports' and open data's rendering needs: the language and its words. */
function wordsContext() {
  return { lang: page.lang, words: { ...PUBLIC_TEXT.vi, ...PUBLIC_TEXT[page.lang] }, categories: page.categories };
}

function renderReports() {
  const ctx = wordsContext();
  $('#report-figures').replaceChildren(...reportFigures(page.year, ctx));
  $('#report-figures').hidden = !page.year;
  const list = $('#report-list');
  const more = $('#report-more');
  if (page.reports === null) {
    list.replaceChildren(el('li', { class: 'muted' }, page.reportsFailed ? t('reportsFailed') : t('loading')));
    more.hidden = true;
    return;
  }
  if (!page.reports.length) {
    list.replaceChildren(el('li', { class: 'muted' }, t('noReports')));
    more.hidden = true;
    return;
  }
  list.replaceChildren(...reportRows(page.reports, page.shownReports, ctx, showReport));
  more.hidden = page.shownReports >= page.reports.length;
}

async function refreshReports() {
  const loaded = await loadReports();
  page.reportsFailed = loaded.reports === null;
  if (loaded.reports !== null) page.reports = loaded.reports;
  if (loaded.categories.size) page.categories = loaded.categories;
  if (loaded.year) page.year = loaded.year;
  placeReportMarkers();
  placeMarkers();
  renderChips();
  renderReports();
}

function renderOpenData() {
  const body = $('#opendata-body');
  if (page.openData === 'failed') body.replaceChildren(el('p', { class: 'muted' }, t('openDataFailed')));
  else if (page.openData) body.replaceChildren(...openDataBlock(page.openData, wordsContext()));
  else body.replaceChildren(el('p', { class: 'muted' }, t('loading')));
}

async function refreshOpenData() {
  try {
    page.openData = await loadOpenData();
  } catch (e) {
    console.warn(e);
    if (!page.openData) page.openData = 'failed';
  }
  renderOpenData();
}

// ---------- start ----------

async function refresh() {
  try {
    const data = await getJson('/public/api/markers');
    page.markers = data.markers.filter((m) => LAYERS.includes(m.layer) && Array.isArray(m.position));
    page.generatedAt = data.generatedAt;
    $('#load-error').hidden = true;
    render();
    return true;
  } catch (e) {
    console.warn(e);
    $('#load-error').textContent = t('loadFailed');
    $('#load-error').hidden = false;
    return false;
  }
}

async function start() {
  onLangButtons((lang) => {
    page.lang = lang;
    applyLanguage();
  });
  applyLanguage();
  $('#updated').textContent = t('loading');
  page.config = await getJson('/public/api/config');
  map = provinceMap('map', page.config, { scrollWheelZoom: false });
  page.communes = await getJson('/public/api/communes');
  drawCommunes();
  $('#report-more').addEventListener('click', () => {
    page.shownReports = nextShown(page.shownReports, page.reports?.length || 0);
    renderReports();
  });
  await Promise.all([refresh(), loadPublicScorecard(), refreshReports(), refreshOpenData()]);
  applyLanguage();
  document.body.dataset.ready = 'true';
  setInterval(() => {
    if (document.hidden) return;
    refresh();
    refreshReports();
    refreshOpenData();
  }, REFRESH_MS);
}

start().catch((e) => {
  console.error(e);
  $('#load-error').textContent = t('loadFailed');
  $('#load-error').hidden = false;
  document.body.dataset.ready = 'error';
  setTimeout(() => location.reload(), 30_000);
});
