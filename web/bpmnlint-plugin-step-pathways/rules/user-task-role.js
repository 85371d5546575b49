// A person's step goes to a role: its lane's name, or its candidate groups (bundle._check_user_task).
const { is, attr, lanesOf, processOf, isPersonStep } = require('../lib/helpers');

module.exports = function () {
  function check(node, reporter) {
    if (!isPersonStep(node)) return;
    const kind = is(node, 'bpmn:UserTask') ? 'user task' : is(node, 'bpmn:ManualTask') ? 'manual task' : 'task';
    const groups = attr(node, 'candidateGroups');
    const process = processOf(node);
    const lane = process ? lanesOf(process)[node.id] : undefined;
    if (!(groups && String(groups).trim()) && !lane) {
      reporter.report(node.id, `the ${kind} has no role: put it in a named lane or set candidate groups`);
    }
  }
  return { check };
};
