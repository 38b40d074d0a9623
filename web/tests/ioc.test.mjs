// The operations-centre app at /ioc/ in headless Chromium against a real `dothi demo`,
// signed in with the one-time login link `dothi demo` prints.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SCREENSHOTS, signedInPage, withDemoAndBrowser } from './server.mjs';

const GAUGE = 'urn:ngsi-ld:WaterObserved:demo-thach-han';
const NGSI = '/ngsi-ld/v1';
let demo;
let browser;
let page;

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  page = await signedInPage(browser, demo, { viewport: { width: 1920, height: 1080 }, acceptDownloads: true });
});

const shot = (name, p = page) => p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });

test('dothi demo prints the public page, then a login link and an admin key', () => {
  const lines = demo.printed.split('\n');
  const first = lines.findIndex((l) => l.startsWith('dothi demo is running'));
  assert.match(lines[first + 1], /public page:\s+http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.match(demo.loginLink, /^http:\/\/127\.0\.0\.1:\d+\/auth\/v1\/login-link\?token=\S+$/);
  assert.match(demo.key, /^dothi_\S{20,}$/);
  assert.equal(new URL(page.url()).pathname, '/ioc/');
});

test('the map shows the 78 communes, a legend and the tiles', async () => {
  assert.equal(await page.locator('path[data-commune]').count(), 78);
  assert.match(await page.locator('#legend').innerText(), /Hộ có băng rộng cố định/);
  assert.equal(await page.locator('.tile').count(), 8);
  assert.match(await page.locator('h1').innerText(), /Trung tâm giám sát, điều hành đô thị thông minh/);
  await page.waitForSelector('#live[data-state="on"]');
  await shot('dashboard-1920x1080');
});

test('the indicator changes the shading and the legend', async () => {
  const fill = () => page.locator('path[data-commune="19333"]').getAttribute('fill');
  const before = await fill();
  await page.selectOption('#indicator', 'alerts');
  assert.match(await page.locator('#legend').innerText(), /Số đối tượng đang cảnh báo/);
  await page.selectOption('#indicator', 'population');
  // The data set has no population figures: every commune is drawn as without data.
  assert.match(await page.locator('#legend').innerText(), /Không có dữ liệu/);
  assert.notEqual(await fill(), before);
  await page.selectOption('#indicator', 'broadband');
  assert.equal(await fill(), before);
});

test('a layer toggles', async () => {
  const tourism = page.locator('.leaflet-marker-pane .ly-tourism');
  assert.ok((await tourism.count()) > 0);
  await page.locator('[data-layer="tourism"] input').uncheck();
  assert.equal(await tourism.count(), 0);
  const education = page.locator('.leaflet-marker-pane .ly-education');
  assert.equal(await education.count(), 0);
  await page.locator('[data-layer="education"] input').check();
  await page.waitForFunction(() => document.querySelectorAll('.leaflet-marker-pane .ly-education').length > 0);
  await page.locator('[data-layer="education"] input').uncheck();
  await page.locator('[data-layer="tourism"] input').check();
  await page.waitForFunction(() => document.querySelectorAll('.leaflet-marker-pane .ly-tourism').length > 0);
});

test('clicking a river gauge opens its chart with data', async () => {
  // A day of history, one reading every 30 minutes, added through the temporal API.
  const now = Date.now();
  const instances = [];
  for (let i = 48; i >= 1; i--) {
    instances.push({
      type: 'Property',
      value: 2 + Math.sin(i / 6) * 1.5,
      observedAt: new Date(now - i * 30 * 60_000).toISOString(),
    });
  }
  await demo.api('POST', `${NGSI}/temporal/entities/${GAUGE}/attrs`, { waterLevel: instances });
  await page.evaluate((id) => window.ioc.focus(id), GAUGE);
  const marker = page.locator(`.mk[data-id="${GAUGE}"]`);
  await marker.waitFor({ state: 'visible' });
  await marker.click();
  await page.waitForSelector('#panel:not([hidden]) .panel-title');
  assert.match(await page.locator('.panel-title').innerText(), /Thạch Hãn/);
  assert.match(await page.locator('#panel').innerText(), /Dữ liệu minh họa/);
  await page.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.points) >= 40);
  await page.waitForSelector('#chart canvas');
  await page.locator('.ranges [data-range="7d"]').click();
  await page.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.points) >= 20);
  await shot('gauge-panel-1920x1080');
});

test('the panel shows times in Vietnam, alarm levels in words and units with values', async () => {
  // A gauge of its own (the simulator feeds the demo's), past alarm level II, with a
  // time given in UTC.
  const id = 'urn:ngsi-ld:WaterObserved:test-panel-format';
  const now = new Date().toISOString();
  await demo.api('POST', `${NGSI}/entities`, {
    id,
    type: 'WaterObserved',
    name: { type: 'Property', value: 'Trạm thử định dạng' },
    waterLevel: { type: 'Property', value: 4.82, unitCode: 'MTR', observedAt: now },
    alarmLevel1: { type: 'Property', value: 3, unitCode: 'MTR' },
    alarmLevel2: { type: 'Property', value: 4.5, unitCode: 'MTR' },
    alarmLevel3: { type: 'Property', value: 6, unitCode: 'MTR' },
    alarmLevelReached: { type: 'Property', value: 2, observedAt: now },
    relativeHumidity: { type: 'Property', value: 0.87, observedAt: now },
    lastInspection: { type: 'Property', value: { '@type': 'DateTime', '@value': '2026-03-01T01:30:00Z' } },
    location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [107.19, 16.75] } },
  });
  await page.evaluate((id) => window.ioc.open(id), id);
  const row = (attr) => page.locator(`#panel tr[data-attr="${attr}"] .value`);
  // The panel of the earlier test's gauge has the same rows until this one's entity
  // arrives: wait for its name.
  await page.waitForFunction(() => document.querySelector('#panel-body')?.textContent.includes('Trạm thử định dạng'));
  await page.waitForSelector('#panel tr[data-attr="alarmLevelReached"]');
  assert.equal(await row('alarmLevelReached').innerText(), 'Báo động II');
  // 01:30 UTC is 08:30 in Asia/Ho_Chi_Minh; no ISO string is left in the panel.
  const inspection = await row('lastInspection').innerText();
  assert.match(inspection, /01\/03\/2026/);
  assert.match(inspection, /08:30/);
  assert.doesNotMatch(await page.locator('#panel').innerText(), /\d{4}-\d{2}-\d{2}T\d{2}:/);
  // Every number carries its unit: metres for the levels, percent for a ratio.
  for (const attr of ['waterLevel', 'alarmLevel1', 'alarmLevel3']) {
    assert.match(await row(attr).innerText(), /^[\d.,]+ m$/, attr);
  }
  assert.match(await row('relativeHumidity').innerText(), /^87 %$/);
  // Back under alarm level I: the words follow the live change, in English too.
  await demo.api('PATCH', `${NGSI}/entities/${id}/attrs`, {
    alarmLevelReached: { type: 'Property', value: 0, observedAt: new Date().toISOString() },
  });
  const reads = (words) =>
    page.waitForFunction(
      ([attr, w]) => (document.querySelector(`#panel tr[data-attr="${attr}"] .value`)?.textContent || '') === w,
      ['alarmLevelReached', words],
    );
  await reads('Dưới mức báo động I');
  await page.locator('.top .lang [data-lang="en"]').click();
  await reads('Below alarm level I');
  await page.locator('.top .lang [data-lang="vi"]').click();
  await demo.api('DELETE', `${NGSI}/entities/${id}`);
});

test('a reading sent through the API appears live', async () => {
  const id = 'urn:ngsi-ld:WaterObserved:test-live-cam-lo';
  await demo.api('POST', `${NGSI}/entities`, {
    id,
    type: 'WaterObserved',
    name: { type: 'LanguageProperty', languageMap: { vi: 'Trạm thử Cam Lộ', en: 'Cam Lo test gauge' } },
    waterLevel: { type: 'Property', value: 1.5, observedAt: new Date().toISOString() },
    alarmLevel1: { type: 'Property', value: 3 },
    alarmLevel2: { type: 'Property', value: 4 },
    alarmLevel3: { type: 'Property', value: 5 },
    location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [107.0, 16.78] } },
  });
  // The new gauge arrives on the map and in the feed without a reload.
  const item = page.locator(`#feed li[data-id="${id}"]`);
  await item.first().waitFor({ timeout: 10_000 });
  await item.first().click();
  await page.waitForSelector('#panel:not([hidden]) tr[data-attr="waterLevel"]');
  await demo.api('PATCH', `${NGSI}/entities/${id}/attrs`, {
    waterLevel: { type: 'Property', value: 5.25, observedAt: new Date().toISOString() },
  });
  await page.waitForFunction(() => /5,25/.test(document.querySelector('#panel tr[data-attr="waterLevel"] .value')?.textContent || ''), null, {
    timeout: 10_000,
  });
  await page.waitForSelector(`.mk.st-alarm3[data-id="${id}"]`, { state: 'attached', timeout: 10_000 });
  assert.match(await page.locator('#panel .badge.st-alarm3').innerText(), /Báo động III/);
});

test('the language switch changes the labels', async () => {
  await page.locator('.top .lang [data-lang="en"]').click();
  assert.equal(await page.locator('.tab[data-view="map"]').innerText(), 'Map');
  assert.equal(await page.locator('h1').innerText(), 'Smart City Operations Centre');
  assert.match(await page.locator('#legend').innerText(), /Households with broadband/);
  assert.match(await page.locator('#layers').innerText(), /Water and floods/);
  await shot('dashboard-en-1920x1080');
  await page.locator('.top .lang [data-lang="vi"]').click();
  assert.equal(await page.locator('.tab[data-view="map"]').innerText(), 'Bản đồ');
  assert.match(await page.locator('#layers').innerText(), /Nước và lũ lụt/);
});

test('the explorer finds an entity and exports it', async () => {
  await page.locator('.tab[data-view="explorer"]').click();
  await page.fill('#search input[name="q"]', 'thach han');
  await page.selectOption('#search select[name="type"]', 'WaterObserved');
  await page.locator('#search button[type="submit"]').click();
  const row = page.locator(`#results tr[data-id="${GAUGE}"]`);
  await row.waitFor();
  assert.equal(await page.locator('#results tbody tr').count(), 1);
  assert.match(await row.innerText(), /Thạch Hãn/);
  await shot('explorer-1920x1080');

  const [csv] = await Promise.all([page.waitForEvent('download'), page.locator('#export-csv').click()]);
  const csvText = await readFile(await csv.path(), 'utf8');
  const lines = csvText.trim().split(/\r\n/);
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^\uFEFF?id,type,name,/);
  assert.ok(lines[1].startsWith(`${GAUGE},WaterObserved,`));
  assert.match(lines[1], /Thạch Hãn/);

  const [geo] = await Promise.all([page.waitForEvent('download'), page.locator('#export-geojson').click()]);
  const collection = JSON.parse(await readFile(await geo.path(), 'utf8'));
  assert.equal(collection.type, 'FeatureCollection');
  assert.deepEqual(
    collection.features.map((f) => f.id),
    [GAUGE],
  );
  assert.equal(collection.features[0].geometry.type, 'Point');

  // A row opens the entity on the map. The panel may still show the gauge an earlier
  // test opened: wait for it to show this one.
  await row.click();
  await page.waitForSelector('#view-map.active #panel:not([hidden])');
  await page
    .waitForFunction(() => /Thạch Hãn/.test(document.querySelector('.panel-title')?.textContent || ''), null, {
      timeout: 10_000,
    })
    .catch(() => {});
  assert.match(await page.locator('.panel-title').innerText(), /Thạch Hãn/);
});

test('a dashboard tile lists the entities behind it', async () => {
  await page.locator('#panel-close').click();
  const tile = page.locator('.tile[data-tile="streetlightsOut"]');
  const count = Number((await tile.locator('.tile-count').innerText()).replace(/\D/g, ''));
  assert.ok(count > 1);
  await tile.click();
  await page.waitForSelector('#view-explorer.active #filter-note:not([hidden])');
  await page.waitForFunction((n) => document.querySelector('#page-info').textContent.includes(String(n)), count);
  assert.match(await page.locator('#results tbody tr').first().innerText(), /Đèn đường/);
  await page.locator('#filter-note button').click();
  await page.locator('.tab[data-view="map"]').click();
});

test('on a phone the map comes first and the panel is a sheet', async () => {
  // The same session on the phone (the login link works once).
  const phoneContext = await browser.newContext({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    storageState: await page.context().storageState(),
  });
  const phone = await phoneContext.newPage();
  await phone.goto(`${demo.base}/ioc/`);
  await phone.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await phone.locator('path[data-commune]').count(), 78);
  const mapBox = await phone.locator('#map').boundingBox();
  const tilesBox = await phone.locator('#tiles').boundingBox();
  assert.ok(mapBox.y < tilesBox.y, 'the map is above the tiles');
  assert.ok(mapBox.width <= 390);
  await shot('dashboard-390x844', phone);
  await phone.evaluate((id) => window.ioc.open(id), GAUGE);
  await phone.waitForSelector('#panel:not([hidden]) .panel-title');
  await phone.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.points) > 0);
  await shot('gauge-panel-390x844', phone);
  await phone.locator('#panel-close').click();
  await phone.locator('.tab[data-view="explorer"]').click();
  await phone.waitForSelector('#results tbody tr[data-id]');
  await shot('explorer-390x844', phone);
  await phoneContext.close();
});

test('the page ran under its Content-Security-Policy without a refusal', () => {
  assert.deepEqual(page.cspViolations, []);
});
