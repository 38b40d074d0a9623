// Bundles the operations-centre app with esbuild into $DOTHI_WEB_OUT (default dist/):
// index.html, and assets/ with content-hashed names, which index.html refers to.
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';

const out = path.resolve(process.env.DOTHI_WEB_OUT || 'dist');
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const result = await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  target: ['es2020'],
  outdir: path.join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.png': 'file', '.svg': 'file' },
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

const built = Object.keys(result.metafile.outputs).map((p) => path.resolve(p));
const find = (ext) => {
  const file = built.find((p) => p.endsWith(ext) && path.basename(p).startsWith('main-'));
  if (!file) throw new Error(`esbuild produced no main-*${ext}`);
  return '/assets/' + path.basename(file);
};
const html = (await readFile('src/index.html', 'utf8'))
  .replaceAll('{{js}}', find('.js'))
  .replaceAll('{{css}}', find('.css'));
await writeFile(path.join(out, 'index.html'), html);
await copyFile('src/favicon.svg', path.join(out, 'assets', 'favicon.svg'));
