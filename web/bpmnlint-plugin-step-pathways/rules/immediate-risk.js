// Every pathway with a person's step catches 'immediate_risk' in an event sub-process that leads first to a
// person's step (the front door); a statutory pathway without interrupting (conventions.process_problems).
const { is, properties, isPersonStep } = require('../lib/helpers');

const MESSAGE = 'immediate_risk';

function descendants(container, out = []) {
  for (const element of container.flowElements || []) {
    out.push(element);
    if (is(element, 'bpmn:SubProcess')) descendants(element, out);
  }
  return out;
}

function firstSteps(start) {
  const found = [];
  const seen = new Set();
  const pending = [start];
  while (pending.length) {
    const current = pending.pop();
    for (const flow of current.outgoing || []) {
      const target = flow.targetRef;
      if (!target || seen.has(target.id)) continue;
      seen.add(target.id);
      if (isPersonStep(target)) found.push(target);
      else pending.push(target);
    }
  }
  return found;
}

module.exports = function () {
  function check(node, reporter) {
    if (!is(node, 'bpmn:Process') || node.isExecutable === false) return;
    const all = descendants(node);
    if (!all.some(isPersonStep)) return;
    const starts = [];
    for (const sub of all) {
      if (!is(sub, 'bpmn:SubProcess') || !sub.triggeredByEvent) continue;
      for (const start of sub.flowElements || []) {
        if (!is(start, 'bpmn:StartEvent')) continue;
        const definition = (start.eventDefinitions || []).find((d) => is(d, 'bpmn:MessageEventDefinition'));
        if (definition && definition.messageRef && definition.messageRef.name === MESSAGE) starts.push(start);
      }
    }
    if (!starts.length) {
      reporter.report(node.id, `the pathway does not catch the message '${MESSAGE}': add an event sub-process ` +
        'started by that message whose first step is a user task for the front door (docs/safeguarding.md, rule 2)');
    }
    const statutory = properties(node).statutory === 'true';
    for (const start of starts) {
      if (!firstSteps(start).length) {
        reporter.report(start.id, `the '${MESSAGE}' event sub-process must lead first to a user task for the front door`);
      }
      if (statutory && start.isInterrupting !== false) {
        reporter.report(start.id, 'the child is open to statutory services while this pathway runs (statutory = ' +
          'true): immediate risk must not interrupt it, so that reviews go on; make the start event non-interrupting');
      }
    }
  }
  return { check };
};
