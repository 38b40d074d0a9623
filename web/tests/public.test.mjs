// The public page's citizen reports and open data, in headless Chromium on a phone's
// viewport against a real `dothi demo`: the reports' layer on the map, the list of
// recent reports with their stage, agency, due date, result, rating and photo, the last
// 12 months' figures, and the open data portal's counts and newest datasets. A report
// filed with a contact and a description shows neither on the page.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { drawJpeg, openPage, SCREENSHOTS, withDemoAndBrowser } from './server.mjs';

const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
// Đông Hà, inside the province.
const DONG_HA = { lat: 16.8163, long: 107.1003 };
// What the reporter gives of themselves, and their own words: none of it may reach the page.
const REPORTER = { first_name: 'Lê Thị Hoa9182', last_name: 'Phạm9182', email: 'hoa.9182@example.vn', phone: '0977 918 200' };
const DESCRIPTION = 'Cống tắc trước số nhà 9182, gọi tôi khi đến';

let demo;
let browser;
let filed; // the report filed with a contact and a photo

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  const photo = await drawJpeg(browser, 'cong.jpg', '#4b6584');
  const form = new FormData();
  for (const [k, v] of Object.entries({ jurisdiction_id: 'quangtri', service_code: 'thoat-nuoc', ...DONG_HA, description: DESCRIPTION, ...REPORTER })) {
    form.append(k, String(v));
  }
  form.append('media', new Blob([photo.buffer], { type: photo.mimeType }), photo.name);
  // With the admin key: staff are not rate-limited.
  const r = await fetch(`${demo.base}/open311/v2/requests.json`, { method: 'POST', headers: { Authorization: `Bearer ${demo.key}` }, body: form });
  const body = await r.json();
  assert.equal(r.status, 201, JSON.stringify(body));
  filed = body[0].service_request_id;
});

const shot = (name, p) => p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });

test('on a phone: the reports on the map and in a list, the year in figures, open data, nothing personal', async () => {
  const page = await openPage(browser, PHONE);
  const asked = [];
  page.on('request', (r) => asked.push(new URL(r.url()).pathname));
  await page.goto(`${demo.base}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });

  // The call to report a problem leads to the citizen's page.
  assert.equal(await page.locator('#report-cta').getAttribute('href'), '/report/');
  assert.match(await page.locator('#report-cta').innerText(), /Gửi phản ánh/);
  // No placeholder is left.
  assert.equal(await page.locator('#coming, [data-placeholder]').count(), 0);

  // The reports' layer: a chip with its count, and markers on the map (the demo's
  // reports of the last 30 days and the one just filed).
  const chip = page.locator('.chip[data-layer="reports"]');
  const count = Number(await chip.locator('.chip-count').innerText());
  assert.ok(count > 10, `the chip counts ${count} reports`);
  const markers = page.locator('.leaflet-marker-pane .rp-mk[data-report]');
  assert.equal(await markers.count(), count);
  assert.equal(await page.locator(`.leaflet-marker-pane .rp-mk[data-report="${filed}"]`).count(), 1);
  await chip.click();
  assert.equal(await markers.count(), 0);
  await chip.click();
  assert.equal(await markers.count(), count);

  // The year in figures.
  const received = await page.locator('[data-figure="received"] .rp-figure-value').innerText();
  assert.ok(Number(received.replace(/\D/g, '')) > 100, `received: ${received}`);
  for (const f of ['handled', 'on-time', 'satisfaction']) {
    assert.match(await page.locator(`[data-figure="${f}"] .rp-figure-value`).innerText(), /^\d+%$/, f);
  }

  await page.locator('#reports').scrollIntoViewIfNeeded();
  await shot('public-reports-390x844', page);

  // The list, newest first: the report just filed, with its stage, agency, due date
  // and photo; none of what the reporter gave of themselves.
  const mine = page.locator(`#report-list li[data-report="${filed}"]`);
  assert.equal(await mine.count(), 1);
  const text = await mine.innerText();
  assert.match(text, /Đã tiếp nhận/);
  assert.match(text, /Đơn vị xử lý\s+\S+/);
  assert.match(text, /Hạn xử lý\s+\d\d\/\d\d\/\d{4}/);
  const thumb = await mine.locator('img.rp-photo').getAttribute('src');
  assert.match(thumb, /^\/reports\/v1\/media\/[0-9a-f]+-thumb\.jpg$/);
  assert.ok(await mine.locator('img.rp-photo').evaluate((img) => img.complete && img.naturalWidth > 0), 'the thumbnail loads');
  // Older reports show a result and a rating once "show more" reaches them.
  const rows = page.locator('#report-list li[data-report]');
  const before = await rows.count();
  await page.locator('#report-more').click();
  assert.ok((await rows.count()) > before);
  while (await page.locator('#report-more').isVisible()) {
    if ((await page.locator('#report-list .rp-rating').count()) > 0) break;
    await page.locator('#report-more').click();
  }
  const rated = page.locator('#report-list li[data-report]:has(.rp-rating)').first();
  assert.match(await rated.innerText(), /Kết quả\s+\S[\s\S]*Đánh giá\s+★/);
  const html = await page.content();
  for (const value of [...Object.values(REPORTER), '0977918200', DESCRIPTION]) {
    assert.ok(!html.includes(value), `the page shows ${value}`);
  }

  // A report's name opens its popup on the map.
  await mine.locator('.rp-name').click();
  await page.waitForSelector(`.leaflet-popup .rp-popup[data-report="${filed}"]`);
  assert.match(await page.locator('.leaflet-popup').innerText(), /Đã tiếp nhận/);

  // Open data: the counts and the newest datasets, linked into the portal.
  const datasets = Number((await page.locator('#od-dataset-count').innerText()).replace(/\D/g, ''));
  assert.ok(datasets > 0, `${datasets} datasets`);
  assert.ok(Number((await page.locator('[data-figure="organisations"] .rp-figure-value').innerText()).replace(/\D/g, '')) > 0);
  const links = page.locator('#opendata .od-recent a');
  assert.ok((await links.count()) > 0);
  await page.locator('#opendata').scrollIntoViewIfNeeded();
  await shot('public-services-390x844', page);

  // English words.
  await page.locator('.lang [data-lang="en"]').click();
  assert.match(await page.locator('#report-cta').innerText(), /Report a problem/);
  assert.match(await mine.innerText(), /Received[\s\S]*Agency/);
  assert.match(await page.locator('#opendata').innerText(), /datasets[\s\S]*Recently updated/);
  await page.locator('.lang [data-lang="vi"]').click();

  // Public endpoints only.
  assert.deepEqual(
    asked.filter(
      (p) => p.startsWith('/ioc/') || p.startsWith('/ngsi-ld/') || p.startsWith('/auth/') || p === '/reports/v1/requests' || p === '/reports/v1/stats',
    ),
    [],
  );
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide`);
  assert.deepEqual(page.cspViolations, []);

  // A dataset's link opens it in the portal.
  const title = await links.first().innerText();
  await links.first().click();
  await page.waitForURL(/\/data\/\?dataset=/);
  await page.waitForFunction((t) => document.body.innerText.includes(t), title, { timeout: 30_000 });
  await page.context().close();
});
