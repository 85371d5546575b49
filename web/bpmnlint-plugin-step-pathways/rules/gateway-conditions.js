// An exclusive gateway's outgoing flows each have a condition, or are its default (the server: SpiffWorkflow's
// "Non-default exclusive outgoing sequence flow without condition", reworded by deploy_messages._flow_without_condition).
const { is, label } = require('../lib/helpers');

module.exports = function () {
  function check(node, reporter) {
    if (!is(node, 'bpmn:ExclusiveGateway')) return;
    const outgoing = node.outgoing || [];
    if (outgoing.length < 2) return;
    for (const flow of outgoing) {
      if (flow.conditionExpression || (node.default && node.default.id === flow.id)) continue;
      const target = flow.targetRef;
      const to = target ? ` to '${target.name || target.id}'` : '';
      reporter.report(node.id, `the exclusive gateway ${label(node)} has an outgoing flow ${label(flow)}${to} with ` +
        'no condition that is not its default: give that flow a condition (such as ${decision == "step_down"}) or ' +
        "make it the gateway's default flow");
    }
  }
  return { check };
};
