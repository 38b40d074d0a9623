// The alert banner and the alert list of the operations centre in headless Chromium
// against a real `dothi demo`: a gauge's flood reading brings its alarms into the
// banner, and they leave it when the water falls; the list shows, filters and
// acknowledges alerts, and shows what the data holds as text.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { SCREENSHOTS, signedInPage, withDemoAndBrowser } from './server.mjs';

// A gauge of the test's own, so that the demo's simulated gauges do not interfere.
const GAUGE = 'urn:ngsi-ld:WaterObserved:banner-test';
let demo;
let browser;
let page;

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  page = await signedInPage(browser, demo, { viewport: { width: 1440, height: 900 } });
});

const gauge = (level, id = GAUGE, name = 'Trạm thử nghiệm cảnh báo') => ({
  id,
  type: 'WaterObserved',
  name: { type: 'LanguageProperty', languageMap: { vi: name, en: 'Banner test gauge' } },
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
  // Levels I and II fire; the banner may show one before the other arrives, so wait
  // until it shows two, then check that no third one follows.
  await page.waitForFunction(
    () => [...document.querySelectorAll('#alert-banner li')].filter((li) => li.textContent.includes('Trạm thử nghiệm cảnh báo')).length >= 2,
    null,
    { timeout: 20_000 },
  );
  await page.waitForTimeout(500);
  assert.equal(await item.count(), 2, await page.locator('#alert-banner').innerText());
  // Level II (high) comes first.
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

// An id with characters that mean something in HTML attributes, and a name that is markup.
const LISTED = "urn:ngsi-ld:WaterObserved:list-test&x='1'";
const MARKUP = '<img src=x onerror="window.injected=1">Trạm danh sách';

/** The rows of the alert list for the listed gauge: [{ id, status, severity }]. */
const listed = () =>
  page.evaluate((source) => {
    const rows = [...document.querySelectorAll('#alert-list tbody tr')].filter((tr) => tr.children[2]?.textContent === source);
    return rows.map((tr) => ({ id: tr.getAttribute('data-alert'), status: tr.dataset.status, severity: tr.dataset.severity }));
  }, LISTED);

/** Asserts that every row of the alert list, whatever its gauge, has `value` in its
 * data attribute `key`. */
async function everyRowHas(key, value) {
  const values = await page.locator('#alert-list tbody tr').evaluateAll((trs, k) => trs.map((tr) => tr.dataset[k]), key);
  assert.ok(
    values.every((v) => v === value),
    JSON.stringify(values),
  );
}

async function waitForListed(what, ok) {
  const started = Date.now();
  let rows = [];
  while (Date.now() - started < 20_000) {
    rows = await listed();
    if (ok(rows)) return rows;
    await page.waitForTimeout(200);
  }
  assert.fail(`${what}: ${JSON.stringify(rows)}`);
}

test('the alert list shows, filters and acknowledges alerts', async () => {
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert', [gauge(1.0, LISTED, MARKUP)]);
  await page.locator('.tab[data-view="alerts"]').click();
  await page.locator('#alert-filters').waitFor({ timeout: 10_000 });
  // A reading over level III: levels I, II and III fire, and the open list shows them.
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert?options=update', [gauge(6.2, LISTED, MARKUP)]);
  let rows = await waitForListed('three firing alerts', (r) => r.length === 3 && r.every((a) => a.status === 'firing'));
  assert.deepEqual(rows.map((a) => a.severity).sort(), ['critical', 'high', 'medium']);
  // The attribute holds the alert's id as the API gives it; the name is shown as text.
  const api = await demo.api('GET', '/alerts/v1/alerts?open=true&limit=1000');
  const ids = api.alerts.filter((a) => a.alertSource === LISTED).map((a) => a.id);
  assert.deepEqual(rows.map((a) => a.id).sort(), ids.sort());
  const text = await page.locator('#alert-list tbody tr', { hasText: 'Trạm danh sách' }).first().innerText();
  assert.match(text, /<img src=x/);
  assert.equal(await page.locator('#alert-list img').count(), 0);
  assert.equal(await page.evaluate(() => window.injected), undefined);
  // By severity: only the critical ones.
  await page.locator('#alert-filters select[name="severity"]').selectOption('critical');
  rows = await waitForListed('the critical one alone', (r) => r.length === 1);
  assert.equal(rows[0].severity, 'critical');
  await everyRowHas('severity', 'critical');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'alert-list.png') });
  // An admin acknowledges it from the list.
  const critical = page.locator(`#alert-list tr[data-alert="${rows[0].id}"]`);
  await critical.locator('button', { hasText: 'Xác nhận' }).click();
  await waitForListed('acknowledged', (r) => r.length === 1 && r[0].status === 'acknowledged');
  // By state: the acknowledged one, not the firing ones.
  await page.locator('#alert-filters select[name="severity"]').selectOption('');
  await page.locator('#alert-filters select[name="state"]').selectOption('acknowledged');
  rows = await waitForListed('the acknowledged one alone', (r) => r.length === 1);
  assert.equal(rows[0].severity, 'critical');
  await everyRowHas('status', 'acknowledged');
  // The water falls: the list of resolved alerts follows the stream.
  await page.locator('#alert-filters select[name="state"]').selectOption('resolved');
  await demo.api('POST', '/ngsi-ld/v1/entityOperations/upsert?options=update', [gauge(1.0, LISTED, MARKUP)]);
  await waitForListed('three resolved', (r) => r.length === 3 && r.every((a) => a.status === 'resolved'));
  assert.deepEqual(page.cspViolations, []);
});

test('rules, silences and inhibitions are managed from the centre, with the server refusing what it cannot evaluate', async () => {
  page.on('dialog', (d) => d.accept());
  await page.locator('.tab[data-view="alerts"]').click();
  const ruleRows = page.locator('#alert-rules tbody tr');
  await ruleRows.first().waitFor({ timeout: 10_000 });
  // The demo's rules, as the API lists them.
  const listed = async () => ruleRows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  const before = await demo.api('GET', '/alerts/v1/rules?limit=1000');
  assert.deepEqual(
    await listed(),
    before.rules.map((r) => r.id),
  );

  // A new rule whose q cannot be evaluated is refused, with the server's reason shown.
  const rule = {
    id: 'centre-test-rule',
    enabled: false,
    scope: { type: 'WaterObserved', q: 'waterLevel>>1' },
    condition: { kind: 'threshold', attribute: 'waterLevel', op: '>=', value: 2.5 },
    severity: 'low',
    message: { vi: `${MARKUP} {value}`, en: 'Test {value}' },
  };
  await page.locator('#alert-rules [data-action="add"]').click();
  const editor = page.locator('#alert-rule-editor textarea');
  await editor.fill(JSON.stringify(rule));
  await page.locator('#alert-rule-editor button[type="submit"]').click();
  await page.locator('#alert-rule-error').waitFor();
  assert.match(await page.locator('#alert-rule-error').innerText(), /\bq\b/);
  assert.equal((await listed()).includes(rule.id), false);
  // Written JSON that does not parse is said so before anything is sent.
  await editor.fill('{"id": ');
  await page.locator('#alert-rule-editor button[type="submit"]').click();
  await page.waitForFunction(() => document.querySelector('#alert-rule-error')?.textContent.startsWith('JSON không hợp lệ'));
  // Corrected, it is saved, listed and off; its message shows as text.
  delete rule.scope.q;
  await editor.fill(JSON.stringify(rule));
  await page.locator('#alert-rule-editor button[type="submit"]').click();
  const row = page.locator(`#alert-rules tr[data-id="${rule.id}"]`);
  await row.waitFor();
  assert.equal(await page.locator('#alert-rule-editor').count(), 0);
  assert.equal((await demo.api('GET', `/alerts/v1/rules/${rule.id}`)).enabled, false);
  assert.ok((await row.innerText()).includes(MARKUP));
  assert.equal(await page.evaluate(() => window.injected), undefined);

  // Switched on from its row.
  await row.locator('input[name="enabled"]').check();
  for (let i = 0; ; i++) {
    if ((await demo.api('GET', `/alerts/v1/rules/${rule.id}`)).enabled === true) break;
    assert.ok(i < 50, 'the rule is switched on');
    await page.waitForTimeout(100);
  }

  // A backtest says what the API's backtest of the same rule says.
  await page.locator(`#alert-rules tr[data-id="${rule.id}"] [data-action="backtest"]`).click();
  await page.locator('#alert-rules .arules-note').waitFor();
  const said = Number((await page.locator('#alert-rules .arules-note').innerText()).match(/tạo (\d+) cảnh báo/)?.[1]);
  const stored = await demo.api('GET', `/alerts/v1/rules/${rule.id}`);
  assert.equal(said, (await demo.api('POST', '/alerts/v1/backtest', { rule: stored })).count);

  // A silence for the test's gauge: written from the template, listed, then deleted.
  await page.locator('#alert-silences [data-action="add"]').click();
  const silence = {
    id: 'centre-test-silence',
    matchers: [{ name: 'entity', value: GAUGE }],
    endsAt: new Date(Date.now() + 3600_000).toISOString(),
    comment: 'bảo trì',
  };
  await page.locator('#alert-rule-editor textarea').fill(JSON.stringify(silence));
  await page.locator('#alert-rule-editor button[type="submit"]').click();
  const silenceRow = page.locator(`#alert-silences tr[data-id="${silence.id}"]`);
  await silenceRow.waitFor();
  assert.ok((await silenceRow.innerText()).includes(`entity = ${GAUGE}`));
  assert.equal((await demo.api('GET', `/alerts/v1/silences/${silence.id}`)).createdBy !== undefined, true);
  await silenceRow.locator('[data-action="delete"]').click();
  await silenceRow.waitFor({ state: 'detached' });
  const gone = await fetch(`${demo.base}/alerts/v1/silences/${silence.id}`, { headers: { Authorization: `Bearer ${demo.key}` } });
  assert.equal(gone.status, 404);

  // The demo's inhibition is listed; the rule is deleted from its row.
  const inhibitions = await demo.api('GET', '/alerts/v1/inhibitions?limit=1000');
  assert.deepEqual(
    await page.locator('#alert-inhibitions tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id)),
    inhibitions.inhibitions.map((i) => i.id),
  );
  await row.locator('[data-action="delete"]').click();
  await row.waitFor({ state: 'detached' });
  assert.deepEqual(
    await listed(),
    before.rules.map((r) => r.id),
  );
  await page.screenshot({ path: path.join(SCREENSHOTS, 'alert-rules.png') });
  assert.deepEqual(page.cspViolations, []);
});
