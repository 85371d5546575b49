// Builds the vendored front-end assets from web/node_modules (installed from the
// npm registry by `npm ci`) into the Flask static folder.  Nothing is fetched here.
//
//   cd web && node build.mjs ../service/static/vendor
//
// Output (served as /static/vendor/...):
//   govuk/govuk-frontend.min.css    compiled from src/govuk.scss (system font, no GDS Transport)
//   govuk/govuk-frontend.min.js     ES module (import { initAll } from ...)
//   govuk/assets/images/*           images the CSS may reference (no fonts)
//   bpmn-js/bpmn-navigated-viewer.production.min.js   UMD, window.BpmnJS
//   bpmn-js/assets/{diagram-js.css,bpmn-js.css,bpmn-font/css/bpmn-embedded.css}
//   dmn-js/dmn-viewer.production.min.js                UMD, window.DmnJS
//   dmn-js/assets/{diagram-js.css,dmn-js-*.css,dmn-font/css/dmn-embedded.css}
//   modeler/modeler.min.js          IIFE, window.StepModeler: bpmn-js Modeler + Camunda 7 properties panel
//                                   (bundled by esbuild from src/modeler.js)
//   modeler/assets/{properties-panel.css,bpmn-js-bpmnlint.css}
//   dmn-js/dmn-modeler.production.min.js               UMD, window.DmnJS (the decision table editor)
//   form-editor/form-editor.min.js  IIFE, window.StepFormEditor: form-js editor (bundled from src/form-editor.js)
//   form-editor/assets/{form-js.css,form-js-editor.css}
//   LICENSES.txt
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import * as sass from 'sass';
import { checkVendor, EXPECTED, GOVUK_ASSETS_URL } from './check-vendor.mjs';

const WEB = dirname(fileURLToPath(import.meta.url));
const NM = join(WEB, 'node_modules');
const started = Date.now();

if (!process.argv[2]) {
  console.error('usage: node build.mjs OUTPUT_DIR   (e.g. ../service/static/vendor)');
  process.exit(2);
}
const OUT = resolve(process.argv[2]);

const pkgDir = (name, from = WEB) => {
  // Node-style lookup: <from>/node_modules/<name>, then each parent up to web/node_modules/<name>.
  for (let dir = from; dir.startsWith(WEB); dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === WEB) break;
  }
  throw new Error(`package ${name} not installed (run npm ci in web/)`);
};
const pkgJson = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

function copy(pkg, fromRel, toRel) {
  const src = join(pkgDir(pkg), fromRel);
  const dest = join(OUT, toRel);
  if (!existsSync(src)) throw new Error(`${pkg}: ${fromRel} not found (package layout changed?)`);
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(src, dest, { recursive: true });
}

// Start from a clean slate, but only delete what this script writes.
mkdirSync(OUT, { recursive: true });
for (const entry of ['govuk', 'bpmn-js', 'dmn-js', 'modeler', 'form-editor', 'LICENSES.txt']) {
  rmSync(join(OUT, entry), { recursive: true, force: true });
}

// --- GOV.UK Frontend --------------------------------------------------------
const govuk = pkgJson(pkgDir('govuk-frontend'));
const compiled = sass.compile(join(WEB, 'src/govuk.scss'), {
  style: 'compressed',
  loadPaths: [NM],
  quietDeps: true,
  charset: false, // no BOM: we add @charset ourselves so the banner can follow it
});
if (/GDS Transport/i.test(compiled.css)) throw new Error('compiled GOV.UK CSS still mentions GDS Transport');
mkdirSync(join(OUT, 'govuk'), { recursive: true });
writeFileSync(
  join(OUT, 'govuk/govuk-frontend.min.css'),
  // eslint-disable-next-line no-control-regex
  (/[^\x00-\x7f]/.test(compiled.css) ? '@charset "UTF-8";\n' : '') +
    `/*! govuk-frontend v${govuk.version} | MIT | compiled with a system font; assets under ${GOVUK_ASSETS_URL} */\n` +
    compiled.css.replace(/^\uFEFF/, '') +
    '\n',
);
copy('govuk-frontend', 'dist/govuk/govuk-frontend.min.js', 'govuk/govuk-frontend.min.js');
copy('govuk-frontend', 'dist/govuk/govuk-frontend.min.js.map', 'govuk/govuk-frontend.min.js.map');
copy('govuk-frontend', 'dist/govuk/assets/images', 'govuk/assets/images');

// --- bpmn-js: navigated viewer only (pan/zoom, no editing) -------------------
copy('bpmn-js', 'dist/bpmn-navigated-viewer.production.min.js', 'bpmn-js/bpmn-navigated-viewer.production.min.js');
for (const css of ['diagram-js.css', 'bpmn-js.css', 'bpmn-font/css/bpmn-embedded.css']) {
  copy('bpmn-js', `dist/assets/${css}`, `bpmn-js/assets/${css}`);
}

// --- dmn-js: viewer (DRD, decision tables, literal/boxed expressions) and the modeler (editing) ---
copy('dmn-js', 'dist/dmn-viewer.production.min.js', 'dmn-js/dmn-viewer.production.min.js');
copy('dmn-js', 'dist/dmn-modeler.production.min.js', 'dmn-js/dmn-modeler.production.min.js');
for (const css of [
  'dmn-js-decision-table-controls.css',
  'dmn-js-boxed-expression-controls.css',
  'diagram-js.css',
  'dmn-js-shared.css',
  'dmn-js-drd.css',
  'dmn-js-decision-table.css',
  'dmn-js-literal-expression.css',
  'dmn-js-boxed-expression.css',
  'dmn-font/css/dmn-embedded.css',
]) {
  copy('dmn-js', `dist/assets/${css}`, `dmn-js/assets/${css}`);
}

// --- the editor: bpmn-js Modeler with the Camunda 7 properties panel ----------
await esbuild.build({
  entryPoints: [join(WEB, 'src/modeler.js')],
  bundle: true,
  format: 'iife',
  minify: true,
  legalComments: 'eof',
  target: ['es2020'],
  loader: { '.json': 'json' },
  nodePaths: [NM],
  outfile: join(OUT, 'modeler/modeler.min.js'),
  logLevel: 'warning',
});
copy('@bpmn-io/properties-panel', 'dist/assets/properties-panel.css', 'modeler/assets/properties-panel.css');
copy('bpmn-js-bpmnlint', 'dist/assets/css/bpmn-js-bpmnlint.css', 'modeler/assets/bpmn-js-bpmnlint.css');

// --- the form editor: form-js editor (forms as Camunda 7's form-js schema) ------------------------------
await esbuild.build({
  entryPoints: [join(WEB, 'src/form-editor.js')],
  bundle: true,
  format: 'iife',
  minify: true,
  legalComments: 'eof',
  target: ['es2020'],
  nodePaths: [NM],
  outfile: join(OUT, 'form-editor/form-editor.min.js'),
  // One preact for the editor, the viewer's fields and the properties panel (which ships its own copy):
  // two copies break hooks ("Cannot read properties of undefined (reading 'context')").
  alias: { preact: join(pkgDir('@bpmn-io/properties-panel'), 'preact') },
  logLevel: 'warning',
});
copy('@bpmn-io/form-js-viewer', 'dist/assets/form-js.css', 'form-editor/assets/form-js.css');
copy('@bpmn-io/form-js-editor', 'dist/assets/form-js-editor.css', 'form-editor/assets/form-js-editor.css');

// --- LICENSES.txt -----------------------------------------------------------
// govuk-frontend's npm tarball ships no LICENSE file; this is the text of
// LICENSE.txt in its source repository (alphagov/govuk-frontend), which
// package.json declares as "MIT".
const GOVUK_LICENSE = `The MIT License (MIT)

Copyright (C) 2017 Crown Copyright (Government Digital Service)

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;

function licenseText(dir) {
  const names = readdirSync(dir);
  const files = names.filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort();
  if (files.length) return files.map((f) => readFileSync(join(dir, f), 'utf8').trim()).join('\n\n');
  // Some small packages only state the licence in their README.
  const readme = names.find((f) => /^readme/i.test(f));
  const m = readme && readFileSync(join(dir, readme), 'utf8').match(/^#+\s*licen[cs]e\b[^\n]*\n([\s\S]*?)(?=^#|$(?![\s\S]))/im);
  return m && m[1].trim() ? `(no licence file in the package; its ${readme} says:)\n\n${m[1].trim()}` : '';
}

function licenseField(dir, pj) {
  if (pj.license) return typeof pj.license === 'string' ? pj.license : JSON.stringify(pj.license);
  const component = join(dir, 'component.json');
  const alt = existsSync(component) && JSON.parse(readFileSync(component, 'utf8')).license;
  return alt ? `${alt} (declared in component.json)` : 'not declared';
}

// Production dependency tree of a package (what its UMD bundle may contain).
function depTree(name, from = WEB, seen = new Map()) {
  const dir = pkgDir(name, from);
  if (seen.has(dir)) return seen;
  const pj = pkgJson(dir);
  seen.set(dir, pj);
  for (const dep of Object.keys(pj.dependencies ?? {})) depTree(dep, dir, seen);
  return seen;
}

const rule = '='.repeat(78);
const section = (pj, dir, text) =>
  `${rule}\n${pj.name} ${pj.version}  (licence: ${licenseField(dir, pj)})\n` +
  `${pj.homepage ?? ''}\n${rule}\n\n${text || '(no licence file in the package; see the licence field above)'}\n\n`;

let licenses =
  'Third-party front-end assets in service/static/vendor/, built by web/build.mjs\n' +
  'from packages on the npm registry (versions pinned by web/package-lock.json).\n\n' +
  'Copied packages:\n' +
  '  govuk/    govuk-frontend (compiled Sass, ES module, images; the GDS Transport font is NOT included)\n' +
  '  bpmn-js/  bpmn-js navigated viewer + CSS\n' +
  '  dmn-js/   dmn-js viewer + CSS\n' +
  '  modeler/  bpmn-js Modeler, bpmn-js-properties-panel, @bpmn-io/properties-panel, camunda-bpmn-moddle,\n' +
  '            camunda-bpmn-js-behaviors, bpmn-js-bpmnlint, bpmnlint (bundled by esbuild; their licences and\n' +
  '            dependencies are below)\n' +
  '  form-editor/  @bpmn-io/form-js-editor and @bpmn-io/form-js-viewer (bundled by esbuild)\n\n' +
  'bpmn-js and dmn-js are under the bpmn.io licence (MIT plus a watermark clause):\n' +
  'the bpmn.io watermark on rendered diagrams must stay fully visible and must not be\n' +
  'removed, changed or overlapped by other elements.\n\n' +
  'GOV.UK Frontend: the GOV.UK crown/crest (govuk/assets/images/govuk-crest.svg and\n' +
  'the govuk-icon-* / favicon images) and the GDS Transport font are for GOV.UK\n' +
  'services only; this service must not display them.\n\n';

const govukDir = pkgDir('govuk-frontend');
licenses += section(govuk, govukDir, licenseText(govukDir) || GOVUK_LICENSE);
const EDITOR = ['bpmn-js-properties-panel', '@bpmn-io/properties-panel', 'camunda-bpmn-moddle', 'camunda-bpmn-js-behaviors',
  '@bpmn-io/form-js-editor', 'bpmn-js-bpmnlint', 'bpmnlint'];
for (const name of ['bpmn-js', 'dmn-js', ...EDITOR]) {
  const dir = pkgDir(name);
  licenses += section(pkgJson(dir), dir, licenseText(dir));
}

// The UMD bundles include their production dependencies: list them too.
const bundled = new Map();
for (const name of ['bpmn-js', 'dmn-js', ...EDITOR]) {
  for (const [dir, pj] of depTree(name)) {
    if (![ 'bpmn-js', 'dmn-js', ...EDITOR].includes(pj.name)) bundled.set(`${pj.name}@${pj.version}`, [dir, pj]);
  }
}
licenses +=
  `${rule}\n${rule}\nPackages that bpmn-js and dmn-js depend on at run time and that their UMD\n` +
  `bundles (bpmn-navigated-viewer / dmn-viewer .production.min.js) may include.\n` +
  `Versions are those installed here; a bundle holds the versions its publisher built with.\n` +
  [...bundled.keys()].sort().map((k) => `  ${k}  (${licenseField(...bundled.get(k))})`).join('\n') +
  '\n\n';
for (const key of [...bundled.keys()].sort()) {
  const [dir, pj] = bundled.get(key);
  licenses += section(pj, dir, licenseText(dir));
}
writeFileSync(join(OUT, 'LICENSES.txt'), licenses);

// --- check and report ---------------------------------------------------------
const problems = checkVendor(OUT);
if (problems.length) {
  console.error(`build.mjs: output in ${OUT} is incomplete:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}
const files = ['govuk', 'bpmn-js', 'dmn-js', 'modeler', 'form-editor', 'LICENSES.txt'].flatMap((e) => {
  const p = join(OUT, e);
  return statSync(p).isDirectory() ? walk(p) : [p];
});
const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
const versions = ['govuk-frontend', 'bpmn-js', 'dmn-js', 'bpmn-js-properties-panel', 'esbuild', 'sass'].map((n) => `${n} ${pkgJson(pkgDir(n)).version}`);
console.log(
  `build.mjs: ${files.length} files, ${(bytes / 1024 / 1024).toFixed(2)} MB in ${relative(process.cwd(), OUT) || '.'} ` +
    `(${versions.join(', ')}; ${bundled.size} bundled dependencies licensed; ${EXPECTED.length} expected files checked) ` +
    `in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
