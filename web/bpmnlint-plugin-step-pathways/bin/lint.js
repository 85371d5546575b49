#!/usr/bin/env node
// Lints diagrams with the plug-in's rules and prints, as JSON, {file: [{rule, id, message}]}; exit 1 when a
// rule reports. Used by tests/test_bpmnlint_plugin.py and by hand:
//   node web/bpmnlint-plugin-step-pathways/bin/lint.js bpmn/*.bpmn
// Needs bpmnlint and bpmn-moddle (web/node_modules: `npm ci` in web/).
const { readFileSync } = require('node:fs');
const { Linter } = require('bpmnlint');
const StaticResolver = require('bpmnlint/lib/resolver/static-resolver');
const { BpmnModdle } = require('bpmn-moddle');
const { cache, config } = require('../lib/static');

async function lint(file) {
  const moddle = new BpmnModdle();
  const { rootElement } = await moddle.fromXML(readFileSync(file, 'utf8'), 'bpmn:Definitions');
  const linter = new Linter({ config, resolver: new StaticResolver(cache) });
  const results = await linter.lint(rootElement);
  const reports = [];
  for (const [rule, found] of Object.entries(results)) {
    for (const report of found) reports.push({ rule, id: report.id, message: report.message });
  }
  return reports;
}

(async () => {
  const out = {};
  let reported = false;
  for (const file of process.argv.slice(2)) {
    out[file] = await lint(file);
    reported = reported || out[file].length > 0;
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  process.exit(reported ? 1 : 0);
})().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(2);
});
