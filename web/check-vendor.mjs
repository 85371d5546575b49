// Static check of the vendored front-end build output.
//
//   node check-vendor.mjs ../service/static/vendor
//
// Fails (exit 1) if any file the templates link is missing or empty, if the
// compiled GOV.UK CSS mentions GDS Transport, or if any of its url()s points
// outside /static/vendor/govuk/assets/ or at a file that was not copied.
// build.mjs runs the same check at the end of every build.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Paths relative to the output directory (service/static/vendor/),
// i.e. served as /static/vendor/<path>.
export const EXPECTED = [
  'LICENSES.txt',
  'govuk/govuk-frontend.min.css',
  'govuk/govuk-frontend.min.js',
  'govuk/assets/images/govuk-crest.svg',
  'bpmn-js/bpmn-navigated-viewer.production.min.js',
  'bpmn-js/assets/diagram-js.css',
  'bpmn-js/assets/bpmn-js.css',
  'bpmn-js/assets/bpmn-font/css/bpmn-embedded.css',
  'dmn-js/dmn-viewer.production.min.js',
  'dmn-js/assets/diagram-js.css',
  'dmn-js/assets/dmn-js-shared.css',
  'dmn-js/assets/dmn-js-drd.css',
  'dmn-js/assets/dmn-js-decision-table.css',
  'dmn-js/assets/dmn-js-literal-expression.css',
  'dmn-js/assets/dmn-js-boxed-expression.css',
  'dmn-js/assets/dmn-font/css/dmn-embedded.css',
  'modeler/modeler.min.js',
  'modeler/assets/properties-panel.css',
  'modeler/assets/bpmn-js-bpmnlint.css',
  'dmn-js/dmn-modeler.production.min.js',
  'dmn-js/assets/dmn-js-decision-table-controls.css',
  'dmn-js/assets/dmn-js-boxed-expression-controls.css',
  'form-editor/form-editor.min.js',
  'form-editor/assets/form-js.css',
  'form-editor/assets/form-js-editor.css',
];

export const GOVUK_ASSETS_URL = '/static/vendor/govuk/assets/';

/** Returns a list of problems (empty when the output is complete). */
export function checkVendor(outDir) {
  const problems = [];
  for (const rel of EXPECTED) {
    const file = join(outDir, rel);
    if (!existsSync(file)) problems.push(`missing: ${rel}`);
    else if (statSync(file).size === 0) problems.push(`empty: ${rel}`);
  }

  const cssFile = join(outDir, 'govuk/govuk-frontend.min.css');
  if (existsSync(cssFile)) {
    const css = readFileSync(cssFile, 'utf8');
    if (/GDS Transport/i.test(css)) problems.push('govuk CSS mentions "GDS Transport"');
    if (/@font-face/i.test(css)) problems.push('govuk CSS contains @font-face');
    if (css.includes('\uFEFF')) problems.push('govuk CSS contains a byte-order mark (breaks the rule after it)');
    for (const m of css.matchAll(/url\(\s*(['"]?)([^'")]*)\1\s*\)/g)) {
      const raw = m[2];
      if (raw.startsWith('data:')) continue;
      if (!raw.startsWith(GOVUK_ASSETS_URL)) {
        problems.push(`govuk CSS url() outside ${GOVUK_ASSETS_URL}: ${raw}`);
        continue;
      }
      const target = join(outDir, 'govuk/assets', raw.slice(GOVUK_ASSETS_URL.length).split(/[?#]/)[0]);
      if (!existsSync(target)) problems.push(`govuk CSS url() has no file: ${raw}`);
    }
  }

  for (const rel of ['bpmn-js/bpmn-navigated-viewer.production.min.js', 'dmn-js/dmn-viewer.production.min.js',
                     'modeler/modeler.min.js']) {
    const file = join(outDir, rel);
    // The bpmn.io licence requires the watermark code to stay; make sure nobody swaps in a stripped build.
    if (existsSync(file) && !readFileSync(file, 'utf8').includes('bjs-powered-by')) {
      problems.push(`${rel}: bpmn.io watermark code not found`);
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? '../service/static/vendor');
  const problems = checkVendor(outDir);
  if (problems.length) {
    console.error(`check-vendor: ${outDir} is incomplete:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`check-vendor: ${EXPECTED.length} expected files present in ${outDir}`);
}
