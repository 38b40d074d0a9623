// The open data portal's pages in headless Chromium against a real `dothi demo`,
// anonymously: the catalogue lists the demo datasets, searches and filters by theme;
// a dataset page (reached by /dataset/NAME) shows its downloads, a table of the first
// rows and a map of the first points; the API page. Every page runs under its
// Content-Security-Policy.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { openPage, SCREENSHOTS, withDemoAndBrowser } from './server.mjs';

let demo;
let browser;

withDemoAndBrowser((started) => {
  ({ demo, browser } = started);
});

/** A page with no cookie of its own. */
const freshPage = () => openPage(browser, { viewport: { width: 1280, height: 900 } });

test('the catalogue lists, searches and filters the datasets', async () => {
  const page = await freshPage();
  await page.goto(`${demo.base}/data/`);
  await page.waitForSelector('#results > li');
  const count = await page.textContent('#result-count');
  const n = Number(count.match(/\d+/)[0]);
  assert.ok(n >= 10, count);
  assert.equal(await page.locator('#results > li').count(), 10, 'ten a page');
  await page.fill('#search-q', 'mực nước');
  await page.click('#search-form button');
  await page.waitForFunction(() => document.querySelectorAll('#results > li').length === 1);
  assert.match(await page.textContent('#results'), /Mực nước sông/);
  await page.fill('#search-q', '');
  await page.click('#search-form button');
  await page.click('#facet-groups button:has-text("Môi trường")');
  await page.waitForFunction(() => /Môi trường/.test(document.querySelector('#facet-groups .active')?.textContent || ''));
  const titles = await page.locator('#results h3').allTextContents();
  assert.ok(titles.length >= 3 && titles.some((t) => /không khí/.test(t)), titles.join(' | '));
  await page.screenshot({ path: path.join(SCREENSHOTS, 'opendata-catalogue.png') });
  assert.deepEqual(page.cspViolations, []);
});

test('a dataset page has downloads, a table preview and a map', async () => {
  const page = await freshPage();
  await page.goto(`${demo.base}/dataset/truong-hoc`);
  assert.match(page.url(), /\/data\/\?dataset=truong-hoc$/);
  await page.waitForSelector('#od-table table');
  await page.waitForSelector('#od-map .leaflet-interactive');
  const links = await page.locator('.od-downloads a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  for (const file of ['data.csv', 'data.geojson', 'data.json', 'history.csv']) {
    assert.ok(
      links.some((h) => h.endsWith(`/dataset/truong-hoc/${file}`)),
      `${file}: ${links}`,
    );
  }
  const head = await page.locator('#od-table th').allTextContents();
  assert.deepEqual(head.slice(0, 3), ['id', 'type', 'name']);
  assert.ok((await page.locator('#od-table tbody tr').count()) > 0);
  assert.match(await page.textContent('#view-dataset'), /Creative Commons Attribution 4.0/);
  assert.match(await page.textContent('#view-dataset'), /Điều 43/);
  await page.click('[data-lang="en"]');
  await page.waitForSelector('#view-dataset h2:has-text("Schools")');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'opendata-dataset.png') });
  assert.deepEqual(page.cspViolations, []);
});

test('the API page shows CKAN, DCAT, downloads and NGSI-LD', async () => {
  const page = await freshPage();
  await page.goto(`${demo.base}/data/?api`);
  const text = await page.textContent('#view-api');
  for (const s of ['ckanapi', '/catalog.ttl', '/data.csv', '/ngsi-ld/v1/entities']) assert.ok(text.includes(s), s);
  assert.deepEqual(page.cspViolations, []);
});
