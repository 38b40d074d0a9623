// Bundles the pages of the web app with esbuild into $DOTHI_WEB_OUT (default dist/):
// the public page (src/public.html → index.html, served at /), the operations centre
// (src/ioc.html → ioc/index.html, served at /ioc/), the open data portal
// (data/index.html) and the citizen's report page (report/index.html). All are ES
// modules sharing chunks (Leaflet, the words, the helpers) in assets/, with
// content-hashed names, which the pages refer to.

import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const out = path.resolve(process.env.DOTHI_WEB_OUT || 'dist');
await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, 'ioc'), { recursive: true });
await mkdir(path.join(out, 'data'), { recursive: true });
await mkdir(path.join(out, 'report'), { recursive: true });

const PAGES = [
  { entry: 'src/public.js', html: 'src/public.html', target: 'index.html' },
  { entry: 'src/ioc/main.js', html: 'src/ioc.html', target: 'ioc/index.html' },
  // The open data portal, served at /data/.
  { entry: 'src/opendata.js', html: 'src/opendata.html', target: 'data/index.html' },
  // The citizen's report page and its tracking page, served at /report/.
  { entry: 'src/report/main.js', html: 'src/report.html', target: 'report/index.html' },
];

const result = await build({
  entryPoints: PAGES.map((p) => p.entry),
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  splitting: true,
  target: ['es2020'],
  outdir: path.join(out, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.png': 'file', '.svg': 'file' },
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

const outputs = result.metafile.outputs;

// The public pages' brand, `{{brand <href> <title>}}`: the province's mark and name
// above the page's title, a link to the page's home.
const brand = (href, title) =>
  [
    `<a class="pub-brand" href="${href}">`,
    '    <img src="/assets/favicon.svg" alt="" width="34" height="34">',
    '    <span>',
    '      <span class="pub-org" data-t="org">Tỉnh Quảng Trị</span>',
    `      <h1 data-t="title">${title}</h1>`,
    '    </span>',
    '  </a>',
  ].join('\n');
// The public pages' language switch, `{{lang}}`.
const LANG_SWITCH = [
  '<div class="lang" role="group" aria-label="Ngôn ngữ / Language">',
  '      <button type="button" data-lang="vi" class="active">VI</button><button type="button" data-lang="en">EN</button>',
  '    </div>',
].join('\n');
const url = (file) => `/assets/${path.basename(file)}`;

for (const page of PAGES) {
  const [js, meta] = Object.entries(outputs).find(([, o]) => o.entryPoint === page.entry) || [];
  if (!js) throw new Error(`esbuild produced nothing for ${page.entry}`);
  if (!meta.cssBundle) throw new Error(`esbuild produced no stylesheet for ${page.entry}`);
  // The chunks the page imports at once, fetched beside it rather than after it.
  const preload = meta.imports
    .filter((i) => i.kind === 'import-statement' && !i.external)
    .map((i) => `<link rel="modulepreload" href="${url(i.path)}">`)
    .join('\n');
  // What every page's <head> holds after its title and description, `{{head}}`.
  const head = [
    '<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">',
    `<link rel="stylesheet" href="${url(meta.cssBundle)}">`,
    preload,
    `<script type="module" src="${url(js)}"></script>`,
  ]
    .filter(Boolean)
    .join('\n');
  const html = (await readFile(page.html, 'utf8'))
    .replaceAll('{{head}}', head)
    .replace(/\{\{brand (\S+) (.+?)\}\}/g, (_, href, title) => brand(href, title))
    .replaceAll('{{lang}}', LANG_SWITCH);
  await writeFile(path.join(out, page.target), html);
}
await copyFile('src/favicon.svg', path.join(out, 'assets', 'favicon.svg'));

// The citizen's page's service worker, with the list of the files the page needs
// (everything its script imports, its stylesheet and what that refers to), so that the
// page opens without signal.
{
  const page = PAGES.find((p) => p.target === 'report/index.html');
  const files = new Set(['/assets/favicon.svg']);
  const visit = (file) => {
    const u = url(file);
    if (files.has(u) || !outputs[file]) return;
    files.add(u);
    for (const i of outputs[file].imports) if (!i.external) visit(i.path);
  };
  const [js, meta] = Object.entries(outputs).find(([, o]) => o.entryPoint === page.entry);
  visit(js);
  visit(meta.cssBundle);
  const list = [...files].sort();
  const version = createHash('sha256').update(list.join('\n')).digest('hex').slice(0, 16);
  const source = (await readFile('src/report/sw.js', 'utf8'))
    .replace('const FILES = [];', `const FILES = ${JSON.stringify(list)};`)
    .replace("const VERSION = 'dev';", `const VERSION = '${version}';`);
  if (!source.includes(version)) throw new Error('src/report/sw.js: the FILES and VERSION lines were not found');
  // One classic script with the outbox it imports (service workers as modules are not
  // everywhere yet).
  const worker = await build({
    stdin: { contents: source, resolveDir: 'src/report', sourcefile: 'sw.js' },
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['es2020'],
    write: false,
    legalComments: 'eof',
    logLevel: 'warning',
  });
  await writeFile(path.join(out, 'report', 'sw.js'), worker.outputFiles[0].contents);
}
