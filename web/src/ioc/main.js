// The operations-centre app at /ioc/: behind a login (the login page shows while
// /auth/v1/me says 401), the province map with communes shaded by an indicator,
// sector layers of clustered markers coloured by state, dashboard tiles, a panel with
// an entity's attributes and history chart, an explorer with export, the citizen
// reports, the alert list, and the admin pages for admins. Live changes come from
// /ioc/api/stream (server-sent events).
// Times are shown in Asia/Ho_Chi_Minh.
//
// The modules beside this one: state (what the page remembers), map, side (layers,
// legend, tiles, feed), panel (with format for values), explorer (and the views),
// live (the stream). This one starts them and switches the language.
import 'leaflet/dist/leaflet.css';
import 'leaflet.markercluster/dist/MarkerCluster.css';
import 'uplot/dist/uPlot.min.css';
import '../base.css';
import '../style.css';
import { initAdmin, translateAdmin } from '../admin.js';
import { startAlerts, stopAlerts, translateAlerts } from '../alerts.js';
import { ApiError, getJson, initLogin, renderUserMenu, session, showLogin, translateLogin, whoAmI } from '../auth.js';
import { $, markLangButton, onLangButtons, TZ } from '../common.js';
import { ROLE_NAMES } from '../i18n.js';
import { initScorecard, translateScorecard } from '../scorecard.js';
import { initAlertList, translateAlertList } from './alertlist.js';
import { initAlertRules, renderAlertRules } from './alertrules.js';
import { fillExplorerSelects, initExplorer, runSearch, showView } from './explorer.js';
import { connectLive } from './live.js';
import { drawCommunes, focusEntity, initMap, loadMarkers, shadeCommunes } from './map.js';
import { closePanel, openPanel } from './panel.js';
import { startReports, stopReports, translateReports } from './reports.js';
import { renderFeed, renderIndicatorSelect, renderLayers, renderLegend, renderTiles } from './side.js';
import { app, authText, NGSI, t } from './state.js';

// For the operator's console and the browser tests.
window.ioc = app;
app.focus = (id) => focusEntity(id);
app.open = (id) => {
  openPanel(id, 'entity');
  focusEntity(id);
};

function applyLanguage() {
  document.documentElement.lang = app.lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of document.querySelectorAll('#app [data-auth]')) e.textContent = authText(e.dataset.auth);
  markLangButton(app.lang);
  document.title = `IOC ${t('org')} — ${t('title')}`;
  translateLogin();
  if (session.me) renderUserMenu(ROLE_NAMES);
  translateAdmin();
  translateAlerts();
  translateScorecard();
  translateReports();
  translateAlertList();
  renderAlertRules();
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
    timeZone: TZ,
    weekday: 'short',
    day: '2-digit',
    month: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).format(new Date());
}

function showError(error) {
  app.error = error;
  const box = $('#app-error');
  box.textContent = error instanceof ApiError && error.status === 403 ? authText('noAccess') : `${authText('loadFailed')}: ${error.message}`;
  box.hidden = false;
}

const DEFAULT_LAYERS = ['environment', 'water', 'transport', 'tourism', 'health'];

async function start() {
  tick();
  setInterval(tick, 1000);
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view));
  $('#panel-close').addEventListener('click', closePanel);
  $('#indicator').addEventListener('change', (e) => {
    app.indicator = e.target.value;
    shadeCommunes();
  });
  initExplorer();

  app.config = await getJson('/ioc/api/config');
  const stored = JSON.parse(localStorage.getItem('ioc.layers') || 'null');
  app.visible = new Set(Array.isArray(stored) ? stored : DEFAULT_LAYERS);
  initMap();
  connectLive();
  startAlerts(() => app.lang);
  startReports(() => app.lang);
  const [communes, summary, types] = await Promise.all([
    getJson('/ioc/api/communes'),
    getJson('/ioc/api/summary'),
    getJson(`${NGSI}/types`).catch(() => ({ typeList: [] })),
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
  onLangButtons((lang) => {
    app.lang = lang;
    applyLanguage();
  });
  // A login after the session ended starts a fresh page; the first one starts the app.
  initLogin(
    () => app.lang,
    (me) => (app.started ? location.reload() : enter(me)),
  );
  initAdmin(() => app.lang);
  initScorecard(() => app.lang);
  initAlertList(() => app.lang);
  initAlertRules(() => app.lang);
  session.onExpired = () => {
    app.source?.close();
    stopAlerts();
    stopReports();
  };
  applyLanguage();
  let me = null;
  try {
    me = await whoAmI();
  } catch (e) {
    console.warn(e);
  }
  if (me) enter(me);
  else showLogin();
}

boot();
