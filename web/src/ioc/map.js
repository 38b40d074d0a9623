// The province map: communes shaded by the chosen indicator, and each layer's
// markers in a cluster group coloured by the worst state inside it.
import L from 'leaflet';
import 'leaflet.markercluster';
import { getJson } from '../auth.js';
import { $, dotIcon, escapeHtml, provinceMap, STATE_RANK, token } from '../common.js';
import { INDICATOR_NAMES } from '../i18n.js';
import { openPanel } from './panel.js';
import { renderLegend } from './side.js';
import { app, communeName, fmtNumber, itemName, t } from './state.js';

export const SHADES = ['#e8f1f8', '#b9d4ea', '#7fb0d6', '#3f84bd', '#14548f'];

let map;

export function initMap() {
  map = provinceMap('map', app.config);
}

/** After the map's box changed size (the panel opened or closed, a view came back). */
export function resizeMap() {
  map?.invalidateSize();
}

function indicatorValues() {
  return app.communes.features.map((f) => f.properties[app.indicator]).filter((v) => typeof v === 'number');
}

/** The quintile limits of the indicator over the communes (six numbers, or none). */
export function breaks() {
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

export function shadeCommunes() {
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

export function drawCommunes() {
  if (app.communeLayer) app.communeLayer.remove();
  app.communeLayer = L.geoJSON(app.communes, {
    pane: 'communes',
    onEachFeature: (f, layer) => {
      layer.bindTooltip(communeTooltip(f.properties), { sticky: true });
      layer.on('click', () => openPanel(f.properties.id, 'commune'));
      layer.on('add', () => layer.getElement()?.setAttribute('data-commune', f.properties.code));
    },
  }).addTo(map);
  if (!app.fitted) {
    map.fitBounds(app.communeLayer.getBounds(), { padding: [10, 10] });
    app.fitted = true;
  }
  app.communeLayer.eachLayer((l) => l.getElement()?.setAttribute('data-commune', l.feature.properties.code));
  shadeCommunes();
}

let communesTimer = null;
/** The communes' indicators again, at most once every two seconds. */
export function reloadCommunes() {
  clearTimeout(communesTimer);
  communesTimer = setTimeout(async () => {
    app.communes = await getJson('/ioc/api/communes');
    const byId = new Map(app.communes.features.map((f) => [f.properties.id, f.properties]));
    app.communeLayer.eachLayer((l) => {
      l.feature.properties = byId.get(l.feature.properties.id) || l.feature.properties;
    });
    shadeCommunes();
  }, 2000);
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
      iconCreateFunction: (c) => clusterIcon(c, layer),
      showCoverageOnHover: false,
      maxClusterRadius: 45,
      chunkedLoading: true,
      disableClusteringAtZoom: 15,
    });
  }
  return app.clusters[layer];
}

function newMarker(item) {
  const marker = L.marker([item.position[1], item.position[0]], { icon: markerIcon(item), state: item.state, keyboard: false });
  marker.on('click', () => openPanel(item.id, 'entity'));
  app.markers.set(item.id, { item, marker });
  return marker;
}

export function upsertMarker(item) {
  if (!item.layer || !item.position) return;
  const known = app.markers.get(item.id);
  if (known) {
    const before = known.item;
    known.item = item;
    known.marker.options.state = item.state;
    known.marker.setIcon(markerIcon(item));
    if (before.position[0] !== item.position[0] || before.position[1] !== item.position[1]) {
      known.marker.setLatLng([item.position[1], item.position[0]]);
    }
    if (before.state !== item.state) app.clusters[item.layer]?.refreshClusters(known.marker);
    return;
  }
  ensureCluster(item.layer).addLayer(newMarker(item));
}

export function removeMarker(id) {
  const known = app.markers.get(id);
  if (!known) return;
  app.clusters[known.item.layer]?.removeLayer(known.marker);
  app.markers.delete(id);
}

/** Every marker from /ioc/api/markers: new ones added by layer in bulk, gone ones removed. */
export async function loadMarkers() {
  const data = await getJson('/ioc/api/markers');
  const seen = new Set();
  const byLayer = {};
  for (const item of data.markers) {
    seen.add(item.id);
    if (app.markers.has(item.id)) {
      upsertMarker(item);
      continue;
    }
    byLayer[item.layer] ??= [];
    byLayer[item.layer].push(newMarker(item));
  }
  for (const [layer, list] of Object.entries(byLayer)) ensureCluster(layer).addLayers(list);
  for (const id of [...app.markers.keys()]) if (!seen.has(id)) removeMarker(id);
  for (const layer of app.config.layers.map((l) => l.id)) {
    const group = ensureCluster(layer);
    if (app.visible.has(layer) && !map.hasLayer(group)) group.addTo(map);
  }
}

export function toggleLayer(id, on) {
  if (on) app.visible.add(id);
  else app.visible.delete(id);
  const group = ensureCluster(id);
  if (on && !map.hasLayer(group)) group.addTo(map);
  if (!on && map.hasLayer(group)) group.remove();
  const box = $(`#layers [data-layer="${CSS.escape(id)}"] input`);
  if (box) box.checked = on;
  localStorage.setItem('ioc.layers', JSON.stringify([...app.visible]));
}

/** The entity's marker in view, its layer shown: false when it has none. */
export function focusEntity(id) {
  const known = app.markers.get(id);
  if (!known) return false;
  const layer = known.item.layer;
  if (!app.visible.has(layer)) toggleLayer(layer, true);
  // Close enough to see the place, then as close as its cluster needs.
  map.setView(known.marker.getLatLng(), Math.max(map.getZoom(), 12), { animate: false });
  app.clusters[layer].zoomToShowLayer(known.marker, () => {});
  return true;
}
