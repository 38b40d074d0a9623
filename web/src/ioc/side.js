// The side of the map: the indicator choice, the layer list with counts, the legend,
// the dashboard tiles and the feed of live changes.

import { getJson } from '../auth.js';
import { $, el, STATES } from '../common.js';
import { ATTR_NAMES, INDICATOR_NAMES, LAYER_NAMES, STATE_NAMES, TILE_NAMES } from '../i18n.js';
import { showExplorerOf } from './explorer.js';
import { breaks, focusEntity, SHADES, toggleLayer } from './map.js';
import { openPanel } from './panel.js';
import { app, fmtClockTime, fmtNumber, itemName, t } from './state.js';

export function renderIndicatorSelect() {
  $('#indicator').replaceChildren(...app.config.indicators.map((i) => el('option', { value: i, selected: i === app.indicator }, INDICATOR_NAMES[app.lang][i])));
}

export function renderLayers() {
  const counts = app.summary?.layers || {};
  $('#layers').replaceChildren(
    ...app.config.layers.map(({ id }) => {
      const n = Object.values(counts[id] || {}).reduce((a, b) => a + b, 0);
      const bad = Object.entries(counts[id] || {})
        .filter(([s]) => s !== 'normal')
        .reduce((a, [, b]) => a + b, 0);
      return el(
        'label',
        { class: 'layer', 'data-layer': id },
        el('input', { type: 'checkbox', checked: app.visible.has(id), onchange: (e) => toggleLayer(id, e.target.checked) }),
        el('span', { class: `swatch ly-${id}` }),
        el('span', { class: 'layer-name' }, LAYER_NAMES[app.lang][id]),
        el('span', { class: 'layer-count' }, n ? fmtNumber(n, 0) : ''),
        bad ? el('span', { class: 'layer-bad', title: t('alertsHere') }, fmtNumber(bad, 0)) : null,
      );
    }),
  );
}

export function renderLegend() {
  const b = breaks();
  const rows = [el('div', { class: 'legend-title' }, INDICATOR_NAMES[app.lang][app.indicator])];
  if (b.length) {
    for (let i = 0; i < SHADES.length; i++) {
      rows.push(el('div', { class: 'legend-row' }, el('i', { style: `background:${SHADES[i]}` }), `${fmtNumber(b[i], 1)} – ${fmtNumber(b[i + 1], 1)}`));
    }
  }
  rows.push(el('div', { class: 'legend-row' }, el('i', { class: 'nodata' }), t('noData')));
  rows.push(el('div', { class: 'legend-title states' }, t('legendStates')));
  rows.push(
    el(
      'div',
      { class: 'legend-states' },
      ...STATES.map((s) => el('span', { class: 'legend-state' }, el('span', { class: `mk st-${s}` }), STATE_NAMES[app.lang][s])),
    ),
  );
  $('#legend').replaceChildren(...rows);
}

export function renderTiles() {
  const s = app.summary;
  if (!s) return;
  const tiles = s.tiles.map((tile) =>
    el(
      'button',
      { class: `tile ${tile.count ? 'hot' : ''} tile-${tile.id}`, 'data-tile': tile.id, onclick: () => showTile(tile) },
      el('span', { class: 'tile-count' }, fmtNumber(tile.count, 0)),
      el('span', { class: 'tile-name' }, TILE_NAMES[app.lang][tile.id]),
    ),
  );
  $('#tiles').replaceChildren(
    el('div', { class: 'tiles-head' }, t('entitiesTotal')(fmtNumber(s.entities, 0), fmtNumber(s.demo, 0))),
    el('div', { class: 'tile-grid' }, ...tiles),
  );
}

/** A tile's entities: the one in the panel, or several in the explorer. */
function showTile(tile) {
  if (!tile.count) return;
  if (tile.count === 1) {
    openPanel(tile.entities[0].id, 'entity');
    focusEntity(tile.entities[0].id);
    return;
  }
  showExplorerOf(tile.entities.map((e) => e.id));
}

let summaryTimer = null;
/** Tiles and layer counts again, at most once every 0.8 s whatever the live rate. */
export function refreshSummarySoon() {
  if (summaryTimer) return;
  summaryTimer = setTimeout(async () => {
    summaryTimer = null;
    try {
      app.summary = await getJson('/ioc/api/summary');
      renderTiles();
      renderLayers();
    } catch (e) {
      console.warn(e);
    }
  }, 800);
}

export function renderFeed() {
  const list = $('#feed');
  if (!app.feed.length) {
    list.replaceChildren(el('li', { class: 'muted' }, t('feedEmpty')));
    return;
  }
  list.replaceChildren(
    ...app.feed.map((f) =>
      el(
        'li',
        {
          'data-id': f.item.id,
          onclick: () => {
            openPanel(f.item.id, 'entity');
            focusEntity(f.item.id);
          },
        },
        el('span', { class: `mk st-${f.item.state}` }),
        el('span', { class: 'feed-name' }, itemName(f.item)),
        el('span', { class: 'feed-what' }, f.attrs.map((a) => ATTR_NAMES[app.lang][a] || a).join(', ')),
        el('time', {}, fmtClockTime(f.at)),
      ),
    ),
  );
}
