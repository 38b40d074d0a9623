// The alert banner of the operations centre in headless Chromium against a real
// `dothi demo`: a gauge's flood reading brings its alarms into the banner, and they
// leave it when the water falls.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, loginWithLink, SCREENSHOTS, startDemo, watchCsp } from './server.mjs';

// A gauge of the test's own, so that the demo's simulated gauges do not interfere.
const GAUGE = 'urn:ngsi-ld:WaterObserved:banner-test';
let demo;
let browser;
let page;

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await watchCsp(page);
  await loginWithLink(page, demo);
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

const gauge = (level) => ({
  id: GAUGE,
  type: 'WaterObserved',
  name: { type: 'LanguageProperty', languageMap: { vi: 'Trạm thử nghiệm cảnh báo', en: 'Banner test gauge' } },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [107.183, 16.756] } },
  waterLevel: { type: 'Property', value: level, unitCode: 'MTR' },
  alarmLevel1: { type: 'Property', value: 3.0, unitCode: 'MTR' },
  alarmLevel2: { type: 'Property', value: 4.5, unitCode: 'MTR' },
  alarmLevel3: { type: 'Property', value: 6.0, unitCode: 'MTR' },
});

test('the banner shows a flood reading and clears when the water falls', async () => {
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert', [gauge(1.0)]);
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert?options=update', [gauge(4.8)]);
  const item = page.locator('#alert-banner li', { hasText: 'Trạm thử nghiệm cảnh báo' });
  await item.first().waitFor({ timeout: 20_000 });
  // Levels I and II fire; level II (high) comes first.
  assert.equal(await item.count(), 2);
  assert.match(await item.first().innerText(), /vượt mức báo động II \(4\.5 m\)/);
  assert.equal(await page.locator('#alert-banner').getAttribute('role'), 'alert');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'alert-banner.png') });
  // An admin acknowledges from the banner.
  await item.first().locator('button', { hasText: 'Xác nhận' }).click();
  await page.locator('#alert-banner li[data-status="acknowledged"]', { hasText: 'Trạm thử nghiệm cảnh báo' }).waitFor({ timeout: 10_000 });
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert?options=update', [gauge(1.0)]);
  await page.waitForFunction(
    () => ![...document.querySelectorAll('#alert-banner li')].some((li) => li.textContent.includes('Trạm thử nghiệm cảnh báo')),
    null,
    { timeout: 20_000 },
  );
  const alerts = await demo.api('GET', `/alerts/v1/alerts?limit=1000`);
  const mine = alerts.alerts.filter((a) => a.alertSource === GAUGE);
  assert.equal(mine.length, 2);
  assert.ok(
    mine.every((a) => a.status === 'resolved'),
    JSON.stringify(mine),
  );
  assert.ok(
    mine.some((a) => a.acknowledgedBy?.startsWith('user:')),
    JSON.stringify(mine),
  );
  assert.deepEqual(page.cspViolations, []);
});
