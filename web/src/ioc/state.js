// The operations centre's state, declared whole here: the modules read and write
// these fields and add none of their own, so this file is the list of what the page
// remembers.

import { fmtClock, fmtNumber as formatNumber, fmtTime as formatTime, storedLang } from '../common.js';
import { AUTH_TEXT, TEXT } from '../i18n.js';

export const NGSI = '/ngsi-ld/v1';

export const app = {
  /** `vi` or `en`. */
  lang: storedLang(),
  /** /ioc/api/config: layers, indicators, bounds, base map. */
  config: null,
  /** The communes as GeoJSON, their indicators in the properties. */
  communes: null,
  /** The Leaflet layer drawing them. */
  communeLayer: null,
  /** Whether the map was fitted to the communes once. */
  fitted: false,
  /** The indicator shading the communes. */
  indicator: 'broadband',
  /** Entity id → { item, marker } of every marker on the map. */
  markers: new Map(),
  /** Layer id → its marker cluster group. */
  clusters: {},
  /** Layer ids shown. */
  visible: new Set(),
  /** /ioc/api/summary: tiles and per-layer counts. */
  summary: null,
  /** Entity types, for the explorer's filter. */
  types: [],
  /** The entity in the side panel: { id, kind } with kind `entity` or `commune`. */
  selected: null,
  /** The panel's history chart (uPlot) and what it shows. */
  chart: null,
  range: '24h',
  chartAttr: null,
  /** The explorer's page, its total, the ids it is limited to, and the latest search. */
  explorer: { offset: 0, total: 0, ids: null, seq: 0 },
  explorerLoaded: false,
  /** The latest live changes, newest first. */
  feed: [],
  /** The live stream (EventSource). */
  source: null,
  /** The error that stopped the start, shown until a reload. */
  error: null,
  /** Whether the app was entered once (a later login reloads the page). */
  started: false,
};

/** A word of the page in its language (functions for words with figures). */
export const t = (key) => TEXT[app.lang][key] ?? TEXT.vi[key] ?? key;
export const authText = (key) => AUTH_TEXT[app.lang][key] ?? AUTH_TEXT.vi[key] ?? key;
export const fmtNumber = (v, digits = 2) => formatNumber(app.lang, v, digits);
export const fmtTime = (iso) => formatTime(app.lang, iso);
export const fmtClockTime = (iso) => fmtClock(app.lang, iso);
export const itemName = (item) => (app.lang === 'en' && item.nameEn) || item.name;
export const communeName = (c) => (app.lang === 'en' && c.nameEn) || c.name;
