// Every end of a pathway that can end the case names its outcome (conventions.process_problems and
// _ends_the_case: not a reminder's branch, not one branch of a parallel split, not an error end).
const { is, properties, isPersonStep } = require('../lib/helpers');

function containsPersonStep(container) {
  return (container.flowElements || []).some((e) => isPersonStep(e) || (is(e, 'bpmn:SubProcess') && containsPersonStep(e)));
}

function endsTheCase(end) {
  if ((end.eventDefinitions || []).some((d) => is(d, 'bpmn:ErrorEventDefinition'))) return false;
  const seen = new Set();
  const pending = [[end, false]];
  while (pending.length) {
    const [current, joined] = pending.pop();
    const key = `${current.id}/${joined}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (is(current, 'bpmn:StartEvent')) return true;
    let nowJoined = joined;
    if (is(current, 'bpmn:BoundaryEvent')) {
      if (current.cancelActivity === false) continue;
      if (current.attachedToRef) pending.push([current.attachedToRef, joined]);
    }
    if (is(current, 'bpmn:ParallelGateway') || is(current, 'bpmn:InclusiveGateway')) {
      if ((current.outgoing || []).length > 1 && !joined) continue;
      nowJoined = joined || (current.incoming || []).length > 1;
    }
    for (const flow of current.incoming || []) {
      if (flow.sourceRef) pending.push([flow.sourceRef, nowJoined]);
    }
  }
  return false;
}

module.exports = function () {
  function check(node, reporter) {
    if (!is(node, 'bpmn:Process') || node.isExecutable === false || !containsPersonStep(node)) return;
    for (const end of node.flowElements || []) {
      if (!is(end, 'bpmn:EndEvent') || properties(end).outcome) continue;
      if (endsTheCase(end)) {
        reporter.report(end.id, "every end of a pathway names its outcome: add the extension property 'outcome' " +
          '(rule 4: no child drops out of review)');
      }
    }
  }
  return { check };
};
