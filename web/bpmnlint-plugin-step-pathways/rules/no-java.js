// What calls Java or external workers does not run here (bundle.UNSUPPORTED_ELEMENTS and
// UNSUPPORTED_CAMUNDA_ATTRIBUTES).
const { is } = require('../lib/helpers');

function camunda(node, name) {
  const attrs = node.$attrs || {};
  if (attrs[`camunda:${name}`] !== undefined) return attrs[`camunda:${name}`];
  try {
    const value = node.get(`camunda:${name}`);
    return value === '' ? undefined : value;
  } catch (e) {
    return undefined;
  }
}

const ATTRIBUTES = {
  class: 'Java delegates do not run here',
  delegateExpression: 'Java delegates do not run here',
  expression: 'expression delegates do not run here',
  type: 'external tasks do not run here',
};

module.exports = function () {
  function check(node, reporter) {
    if (is(node, 'bpmn:ServiceTask')) {
      reporter.report(node.id, 'service tasks call Java or external workers; use a user task, a script task or a ' +
        'business rule task');
    }
    if (!is(node, 'bpmn:FlowNode')) return;
    for (const [name, reason] of Object.entries(ATTRIBUTES)) {
      if (camunda(node, name) !== undefined) reporter.report(node.id, `camunda:${name} is set: ${reason}`);
    }
  }
  return { check };
};
