// The open data portal at /data/: the catalogue (search, themes, organisations), a
// page per dataset (/data/?dataset=NAME, where /dataset/NAME leads), and the API page
// (/data/?api). Anonymous: it reads the CKAN Action API and the downloads only.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import './base.css';
import './public.css';
import './opendata.css';
import { $, el, fmtTime, markLangButton, onLangButtons, storedLang } from './common.js';

const ROWS = 10;
const PREVIEW_ROWS = 20;
const MAP_POINTS = 500;

const TEXT = {
  vi: {
    org: 'Tỉnh Quảng Trị',
    title: 'Dữ liệu mở',
    catalogue: 'Danh mục',
    api: 'API',
    home: 'Trang chủ',
    search: 'Tìm',
    themes: 'Chủ đề',
    organizations: 'Cơ quan',
    prev: '‹ Trước',
    next: 'Sau ›',
    all: 'Tất cả',
    found: (n) => `${n} bộ dữ liệu`,
    page: (a, b) => `Trang ${a}/${b}`,
    publisher: 'Cơ quan công bố',
    theme: 'Chủ đề',
    licence: 'Giấy phép',
    updated: 'Cập nhật lần cuối',
    frequency: 'Tần suất cập nhật',
    contact: 'Liên hệ',
    tags: 'Từ khóa',
    downloads: 'Tải về',
    apiUrl: 'Địa chỉ API',
    preview: 'Xem trước (các dòng đầu)',
    map: 'Bản đồ (các điểm đầu)',
    noPoints: 'Bộ dữ liệu này không có tọa độ điểm để xem trên bản đồ.',
    history: 'Lịch sử: thêm ?from=…&to=… (ISO 8601, tối đa 366 ngày)',
    notFound: 'Không tìm thấy bộ dữ liệu',
    loadError: 'Không tải được dữ liệu, vui lòng thử lại.',
    footer: 'Dữ liệu mở theo Điều 43 Luật Giao dịch điện tử 2023: miễn phí, không cần định danh, được sử dụng lại.',
    apiTitle: 'Dùng dữ liệu qua API',
    apiCkan: 'API CKAN: mọi công cụ CKAN (ckanapi, trình thu thập) dùng được.',
    apiNgsi: 'NGSI-LD: dữ liệu trực tiếp của nền tảng (cần khóa API để truy vấn).',
    apiDownloads: 'Tải về trực tiếp, không cần đăng nhập:',
    apiDcat: 'Danh mục DCAT-AP 3 (Turtle, JSON-LD, RDF/XML), 10 bộ dữ liệu mỗi trang:',
  },
  en: {
    org: 'Quảng Trị Province',
    title: 'Open data',
    catalogue: 'Catalogue',
    api: 'API',
    home: 'Home',
    search: 'Search',
    themes: 'Themes',
    organizations: 'Organisations',
    prev: '‹ Previous',
    next: 'Next ›',
    all: 'All',
    found: (n) => `${n} datasets`,
    page: (a, b) => `Page ${a}/${b}`,
    publisher: 'Publisher',
    theme: 'Theme',
    licence: 'Licence',
    updated: 'Last updated',
    frequency: 'Update frequency',
    contact: 'Contact',
    tags: 'Keywords',
    downloads: 'Downloads',
    apiUrl: 'API URL',
    preview: 'Preview (first rows)',
    map: 'Map (first points)',
    noPoints: 'This dataset has no point coordinates to show on a map.',
    history: 'History: add ?from=…&to=… (ISO 8601, at most 366 days)',
    notFound: 'Dataset not found',
    loadError: 'The data could not be loaded, please try again.',
    footer: 'Open data under Article 43 of the Law on E-transactions 2023: free, no identification, reusable.',
    apiTitle: 'Using the data through APIs',
    apiCkan: 'CKAN API: every CKAN tool (ckanapi, harvesters) works.',
    apiNgsi: "NGSI-LD: the platform's live data (querying needs an API key).",
    apiDownloads: 'Direct downloads, no login:',
    apiDcat: 'DCAT-AP 3 catalogue (Turtle, JSON-LD, RDF/XML), 10 datasets a page:',
  },
};

const page = { lang: storedLang(), q: '', fq: {}, start: 0, map: null };
const t = (k, ...a) => {
  const v = TEXT[page.lang][k];
  return typeof v === 'function' ? v(...a) : v;
};
const tr = (obj, fallback) => (obj && (obj[page.lang] || obj.vi)) || fallback || '';

async function action(name, params) {
  const qs = new URLSearchParams(params).toString();
  const r = await fetch(`/api/3/action/${name}?${qs}`);
  const body = await r.json();
  if (!body.success) throw Object.assign(new Error(body.error?.message || name), { status: r.status });
  return body.result;
}

function showError(show) {
  const e = $('#load-error');
  e.hidden = !show;
  e.textContent = show ? t('loadError') : '';
}

function translate() {
  document.documentElement.lang = page.lang;
  document.querySelectorAll('[data-t]').forEach((n) => {
    n.textContent = t(n.dataset.t);
  });
  markLangButton(page.lang);
}

function facetList(id, field, items) {
  const ul = $(id);
  ul.replaceChildren();
  const pick = (value) => {
    if (value) page.fq[field] = value;
    else delete page.fq[field];
    page.start = 0;
    search();
  };
  ul.append(el('li', {}, el('button', { type: 'button', class: page.fq[field] ? '' : 'active', onclick: () => pick(null) }, t('all'))));
  for (const i of items) {
    ul.append(
      el(
        'li',
        {},
        el(
          'button',
          {
            type: 'button',
            class: page.fq[field] === i.name ? 'active' : '',
            onclick: () => pick(i.name),
          },
          `${i.display_name} (${i.count})`,
        ),
      ),
    );
  }
}

async function search() {
  const fq = Object.entries(page.fq)
    .map(([k, v]) => `${k}:"${v}"`)
    .join(' ');
  try {
    const r = await action('package_search', {
      q: page.q,
      fq,
      rows: ROWS,
      start: page.start,
      sort: 'title_string asc',
      'facet.field': JSON.stringify(['groups', 'organization']),
    });
    showError(false);
    $('#result-count').textContent = t('found', r.count);
    const list = $('#results');
    list.replaceChildren(
      ...r.results.map((p) =>
        el(
          'li',
          {},
          el('h3', {}, el('a', { href: `/data/?dataset=${encodeURIComponent(p.name)}` }, tr(p.title_translated, p.title))),
          el('p', { class: 'muted' }, `${tr(p.organization.title_translated, p.organization.title)} · ${p.groups[0]?.display_name || ''}`),
          el('p', {}, tr(p.notes_translated, p.notes)),
          el('ul', { class: 'od-tags' }, ...p.tags.map((g) => el('li', {}, g.name))),
        ),
      ),
    );
    facetList('#facet-groups', 'groups', r.search_facets.groups?.items || []);
    facetList('#facet-organization', 'organization', r.search_facets.organization?.items || []);
    const pages = Math.max(1, Math.ceil(r.count / ROWS));
    $('#page-info').textContent = t('page', page.start / ROWS + 1, pages);
    $('#prev').disabled = page.start === 0;
    $('#next').disabled = page.start + ROWS >= r.count;
  } catch {
    showError(true);
  }
}

/** Splits CSV text into rows (quotes, doubled quotes, CRLF). */
function parseCsv(text) {
  const rows = [];
  let row = [],
    cell = '',
    quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell.replace(/\r$/, ''));
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  return rows;
}

/** The first `n` rows of a CSV download, read as they come and then let go. */
async function firstRows(url, n) {
  const r = await fetch(url);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  while (true) {
    const { value, done } = await reader.read();
    if (value) text += dec.decode(value, { stream: true });
    if (done || text.split('\n').length > n + 1) break;
  }
  reader.cancel().catch(() => {});
  const rows = parseCsv(text.replace(/^\ufeff/, ''));
  return rows.slice(0, n + 1);
}

async function showDataset(name) {
  const view = $('#view-dataset');
  let p;
  try {
    p = await action('package_show', { id: name });
  } catch (e) {
    view.replaceChildren(el('h2', {}, e.status === 404 ? t('notFound') : t('loadError')));
    return;
  }
  document.title = `${tr(p.title_translated, p.title)} — ${t('title')}`;
  const origin = window.location.origin;
  const ckanUrl = `${origin}/api/3/action/package_show?id=${encodeURIComponent(p.name)}`;
  const dl = p.resources.map((r) =>
    el(
      'li',
      {},
      el('a', { href: r.url, rel: 'nofollow' }, tr(r.name_translated, r.name)),
      ` — ${r.format}`,
      r.format === 'CSV' && r.url.endsWith('history.csv') ? el('div', { class: 'muted' }, t('history')) : '',
    ),
  );
  view.replaceChildren(
    el(
      'section',
      { class: 'card' },
      el('h2', {}, tr(p.title_translated, p.title)),
      el('p', {}, tr(p.notes_translated, p.notes)),
      el(
        'dl',
        { class: 'od-meta' },
        el('dt', {}, t('publisher')),
        el('dd', {}, tr(p.organization.title_translated, p.organization.title)),
        el('dt', {}, t('theme')),
        el('dd', {}, p.groups[0]?.display_name || p.theme),
        el('dt', {}, t('licence')),
        el('dd', {}, el('a', { href: p.license_url, rel: 'license' }, p.license_title)),
        el('dt', {}, t('updated')),
        el('dd', {}, fmtTime(page.lang, p.metadata_modified)),
        el('dt', {}, t('frequency')),
        el('dd', {}, p.frequency),
        el('dt', {}, t('contact')),
        el('dd', {}, `${p.maintainer} ${p.maintainer_email}`),
        el('dt', {}, t('tags')),
        el('dd', {}, el('ul', { class: 'od-tags' }, ...p.tags.map((g) => el('li', {}, g.name)))),
      ),
      el('p', { class: 'od-rights' }, p.rights),
    ),
    el(
      'section',
      { class: 'card' },
      el('h2', {}, t('downloads')),
      el('ul', { class: 'od-downloads' }, ...dl),
      el('h2', {}, t('apiUrl')),
      el('pre', {}, ckanUrl),
    ),
    el('section', { class: 'card' }, el('h2', {}, t('map')), el('div', { class: 'od-map', id: 'od-map' })),
    el('section', { class: 'card' }, el('h2', {}, t('preview')), el('div', { class: 'od-table', id: 'od-table' })),
  );
  const csv = p.resources.find((r) => r.url.endsWith('/data.csv'));
  if (!csv) return;
  const rows = await firstRows(csv.url, MAP_POINTS).catch(() => []);
  if (!rows.length) return;
  const [head, ...body] = rows;
  $('#od-table').append(
    el(
      'table',
      {},
      el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
      el('tbody', {}, ...body.slice(0, PREVIEW_ROWS).map((r) => el('tr', {}, ...r.map((c) => el('td', { title: c }, c))))),
    ),
  );
  const lat = head.indexOf('lat'),
    lon = head.indexOf('lon');
  const points =
    lat < 0
      ? []
      : body
          .map((r) => [Number(r[lat]), Number(r[lon]), r[0]])
          .filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b) && (a !== 0 || b !== 0) && r0(a, b));
  const box = $('#od-map');
  if (!points.length) {
    box.replaceWith(el('p', { class: 'muted' }, t('noPoints')));
    return;
  }
  const map = L.map(box, { attributionControl: false });
  const group = L.featureGroup(points.map(([a, b, id]) => L.circleMarker([a, b], { radius: 5 }).bindTooltip(id))).addTo(map);
  map.fitBounds(group.getBounds().pad(0.1));
}

const r0 = (a, b) => Math.abs(a) <= 90 && Math.abs(b) <= 180;

function showApi() {
  const o = window.location.origin;
  $('#view-api').replaceChildren(
    el(
      'section',
      { class: 'card' },
      el('h2', {}, t('apiTitle')),
      el('p', {}, t('apiCkan')),
      el(
        'pre',
        {},
        `pip install ckanapi
python3 -c "import ckanapi; p = ckanapi.RemoteCKAN('${o}'); print(p.action.package_search(q='nước', rows=5)['count'])"
curl '${o}/api/3/action/package_search?fq=organization:so-y-te&facet.field=["tags"]'`,
      ),
      el('p', {}, t('apiDcat')),
      el('pre', {}, `${o}/catalog.ttl?page=1\n${o}/catalog.jsonld\n${o}/catalog.rdf\n${o}/dataset/{name}.ttl`),
      el('p', {}, t('apiDownloads')),
      el(
        'pre',
        {},
        `${o}/dataset/{name}/data.csv\n${o}/dataset/{name}/data.geojson\n${o}/dataset/{name}/data.json\n${o}/dataset/{name}/history.csv?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z`,
      ),
      el('p', {}, t('apiNgsi')),
      el('pre', {}, `curl -H 'Authorization: Bearer <key>' '${o}/ngsi-ld/v1/entities?type=WaterObserved&attrs=waterLevel,location'`),
    ),
  );
}

function route() {
  const params = new URLSearchParams(window.location.search);
  $('#view-catalogue').hidden = true;
  $('#view-dataset').hidden = true;
  $('#view-api').hidden = true;
  if (params.has('dataset')) {
    $('#view-dataset').hidden = false;
    showDataset(params.get('dataset'));
  } else if (params.has('api')) {
    $('#view-api').hidden = false;
    showApi();
  } else {
    $('#view-catalogue').hidden = false;
    page.q = params.get('q') || '';
    $('#search-q').value = page.q;
    search();
  }
}

onLangButtons((lang) => {
  page.lang = lang;
  translate();
  route();
});
$('#search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  page.q = $('#search-q').value.trim();
  page.start = 0;
  search();
});
$('#prev').addEventListener('click', () => {
  page.start = Math.max(0, page.start - ROWS);
  search();
});
$('#next').addEventListener('click', () => {
  page.start += ROWS;
  search();
});
translate();
route();
