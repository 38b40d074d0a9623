// Live changes from /ioc/api/stream (server-sent events): markers, the feed, the
// counts, the communes' indicators and the open panel follow them; a citizen report
// that changed has the reports' inbox asked again (and an urgent one announced).

import { checkSession } from '../auth.js';
import { $ } from '../common.js';
import { loadMarkers, reloadCommunes, removeMarker, upsertMarker } from './map.js';
import { refreshPanel } from './panel.js';
import { reportsChanged } from './reports.js';
import { refreshSummarySoon, renderFeed } from './side.js';
import { app, t } from './state.js';

const FEED_LENGTH = 8;

export function connectLive() {
  const live = $('#live');
  const source = new EventSource('/ioc/api/stream');
  source.addEventListener('hello', () => {
    // (Re)connected: reports may have changed meanwhile.
    reportsChanged();
    live.dataset.state = 'on';
    live.lastElementChild.textContent = t('live');
  });
  source.addEventListener('items', (e) => {
    const data = JSON.parse(e.data);
    for (const item of data.items) {
      upsertMarker(item);
      const attrs = data.attrs[item.id] || [];
      if (item.layer) app.feed.unshift({ item, attrs, at: data.at });
    }
    for (const id of data.removed) removeMarker(id);
    if (data.items.some((i) => i.type === 'Open311_ServiceRequest')) reportsChanged();
    app.feed = app.feed.slice(0, FEED_LENGTH);
    renderFeed();
    refreshSummarySoon();
    if (data.communes) reloadCommunes();
    if (app.selected && (data.attrs[app.selected.id] || data.removed.includes(app.selected.id))) {
      refreshPanel(app.selected.id);
    }
  });
  source.addEventListener('resync', () => {
    reportsChanged();
    loadMarkers();
    refreshSummarySoon();
    reloadCommunes();
  });
  source.onerror = () => {
    live.dataset.state = 'off';
    live.lastElementChild.textContent = t('offlineLive');
    // The stream does not say why it failed: a session that ended brings the login back.
    checkSession();
  };
  app.source = source;
}
