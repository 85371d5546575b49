// Scripts run as Python (bundle._check_element).
const { is } = require('../lib/helpers');

module.exports = function () {
  function check(node, reporter) {
    if (!is(node, 'bpmn:ScriptTask')) return;
    const format = String(node.scriptFormat || 'python').toLowerCase();
    if (format !== 'python' && format !== 'python3') {
      reporter.report(node.id, `scripts must be Python; this one is ${format}`);
    }
  }
  return { check };
};
