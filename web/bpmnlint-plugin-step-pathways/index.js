// Step Pathways' bpmnlint plug-in: the service's deploy checks that can be made from the diagram alone, each
// message worded as the server words it (service/deploy_messages.py, service/engine/bundle.py,
// service/engine/conventions.py). `extends: ["plugin:step-pathways/recommended"]` in a .bpmnlintrc.
const RULES = require('./lib/rule-names');

module.exports = {
  configs: {
    recommended: {
      rules: Object.fromEntries(RULES.map((name) => [name, 'error'])),
    },
  },
};
