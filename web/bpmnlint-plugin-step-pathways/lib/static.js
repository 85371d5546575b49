// The plug-in's rules and config for a static resolver (bpmnlint's StaticResolver / bpmn-js-bpmnlint's
// linting config): what `bpmnlint-pack-config` would generate, written out so the browser bundle needs no
// build step of its own.
const plugin = require('../index');

const PKG = 'bpmnlint-plugin-step-pathways';
const rules = {
  'gateway-conditions': require('../rules/gateway-conditions'),
  'user-task-role': require('../rules/user-task-role'),
  'immediate-risk': require('../rules/immediate-risk'),
  'end-outcome': require('../rules/end-outcome'),
  'timer-shape': require('../rules/timer-shape'),
  'script-python': require('../rules/script-python'),
  'no-java': require('../rules/no-java'),
};

const cache = { [`config:${PKG}/recommended`]: plugin.configs.recommended };
for (const [name, rule] of Object.entries(rules)) cache[`rule:${PKG}/${name}`] = rule;

// The config an editor lints with: the plug-in's rules only (bpmnlint's own recommended rules are Camunda
// Modeler's business; the server refuses nothing they find that these do not).
const config = { extends: `plugin:step-pathways/recommended` };

module.exports = { cache, config, rules, PKG };
