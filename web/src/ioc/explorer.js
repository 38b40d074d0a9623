// The views (map, explorer, scorecard, reports, alerts, admin) and the explorer: a filtered, paged
// list of entities with CSV and GeoJSON export of the same filter.

import { showAdmin } from '../admin.js';
import { getJson } from '../auth.js';
import { $, el, STATES } from '../common.js';
import { LAYER_NAMES, STATE_NAMES } from '../i18n.js';
import { showScorecard } from '../scorecard.js';
import { showAlertList } from './alertlist.js';
import { showAlertRules } from './alertrules.js';
import { focusEntity, resizeMap } from './map.js';
import { openPanel } from './panel.js';
import { showReports } from './reports.js';
import { app, communeName, fmtNumber, fmtTime, itemName, t } from './state.js';

export const PAGE = 50;

export function showView(name) {
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === `view-${name}`);
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === name);
  if (name === 'map') setTimeout(resizeMap, 0);
  if (name === 'explorer' && !app.explorerLoaded) {
    app.explorerLoaded = true;
    runSearch();
  }
  if (name === 'admin') showAdmin();
  if (name === 'scorecard') showScorecard();
  if (name === 'reports') showReports();
  showAlertList(name === 'alerts');
  if (name === 'alerts') showAlertRules();
}

/** The explorer limited to these entities (a tile's). */
export function showExplorerOf(ids) {
  $('#search').reset();
  app.explorer.ids = ids;
  app.explorer.offset = 0;
  showView('explorer');
  runSearch();
}

/** The explorer filtered to one commune. */
export function showExplorerOfCommune(id) {
  app.explorer.ids = null;
  showView('explorer');
  $('#search').commune.value = id;
  app.explorer.offset = 0;
  runSearch();
}

/** The filter's choices in the page's language, keeping what was chosen. */
export function fillExplorerSelects() {
  const f = $('#search');
  const { value: typeValue } = f.type;
  const { value: communeValue } = f.commune;
  const { value: layerValue } = f.layer;
  const { value: stateValue } = f.state;
  f.type.replaceChildren(el('option', { value: '' }, t('allTypes')), ...app.types.map((ty) => el('option', { value: ty, selected: ty === typeValue }, ty)));
  const communes = [...app.communes.features].map((x) => x.properties).sort((a, b) => communeName(a).localeCompare(communeName(b), app.lang));
  f.commune.replaceChildren(
    el('option', { value: '' }, t('allCommunes')),
    ...communes.map((c) => el('option', { value: c.id, selected: c.id === communeValue }, communeName(c))),
  );
  f.layer.replaceChildren(
    el('option', { value: '' }, t('allLayers')),
    ...app.config.layers.map((l) => el('option', { value: l.id, selected: l.id === layerValue }, LAYER_NAMES[app.lang][l.id])),
  );
  f.state.replaceChildren(
    el('option', { value: '' }, t('allStates')),
    ...STATES.map((s) => el('option', { value: s, selected: s === stateValue }, STATE_NAMES[app.lang][s])),
  );
}

function searchParams() {
  const f = $('#search');
  const p = new URLSearchParams();
  for (const k of ['q', 'type', 'commune', 'layer', 'state']) if (f[k].value) p.set(k, f[k].value);
  if (app.explorer.ids) p.set('id', app.explorer.ids.join(','));
  return p;
}

export async function runSearch() {
  const p = searchParams();
  $('#export-csv').href = `/ioc/api/export?${p}&format=csv`;
  $('#export-geojson').href = `/ioc/api/export?${p}&format=geojson`;
  const note = $('#filter-note');
  note.hidden = !app.explorer.ids;
  if (app.explorer.ids) {
    note.replaceChildren(
      t('filterIds')(app.explorer.ids.length),
      ' ',
      el(
        'button',
        {
          class: 'link',
          onclick: () => {
            app.explorer.ids = null;
            runSearch();
          },
        },
        t('clearFilter'),
      ),
    );
  }
  p.set('limit', PAGE);
  p.set('offset', app.explorer.offset);
  // Only the latest search is shown, whichever answer arrives last.
  app.explorer.seq += 1;
  const seq = app.explorer.seq;
  const data = await getJson(`/ioc/api/entities?${p}`);
  if (seq !== app.explorer.seq) return;
  app.explorer.total = data.total;
  const rows = data.items.map((i) =>
    el(
      'tr',
      { 'data-id': i.id, onclick: () => openFromExplorer(i) },
      el('td', {}, itemName(i), i.demo ? el('span', { class: 'badge demo small' }, t('demo')) : null),
      el('td', {}, i.type),
      el('td', {}, i.communeName || ''),
      el('td', {}, el('span', { class: `mk st-${i.state}` }), ' ', STATE_NAMES[app.lang][i.state]),
      el('td', { class: 'when' }, fmtTime(i.observedAt || i.modifiedAt)),
    ),
  );
  $('#results tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, t('noResult')))]));
  const a = data.total ? data.offset + 1 : 0;
  const b = Math.min(data.offset + data.limit, data.total);
  $('#page-info').textContent = t('pageInfo')(fmtNumber(a, 0), fmtNumber(b, 0), fmtNumber(data.total, 0));
  $('#prev').disabled = data.offset === 0;
  $('#next').disabled = b >= data.total;
}

function openFromExplorer(i) {
  showView('map');
  if (i.type === 'AdministrativeArea') {
    openPanel(i.id, 'commune');
    return;
  }
  openPanel(i.id, 'entity');
  focusEntity(i.id);
}

/** Explorer paging and the filter form. */
export function initExplorer() {
  $('#search').addEventListener('submit', (e) => {
    e.preventDefault();
    app.explorer.offset = 0;
    runSearch();
  });
  $('#prev').addEventListener('click', () => {
    app.explorer.offset = Math.max(0, app.explorer.offset - PAGE);
    runSearch();
  });
  $('#next').addEventListener('click', () => {
    app.explorer.offset += PAGE;
    runSearch();
  });
}
