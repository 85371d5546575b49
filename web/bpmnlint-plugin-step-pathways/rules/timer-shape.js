// A timer's ISO 8601 text has the shape the engine reads (timers.check_timer_expression): a duration (P7D,
// P3M, P2DT4H), a cycle (R/P3M, R4/P1W) or a date; an expression (${working_days(5)}) is checked by the server.
const { is } = require('../lib/helpers');

const ISO_LITERAL = /^(R\d*\/\S+|P(\d|T)\S*|\d{4}-\d{2}-\d{2}\S*)$/i;
const DURATION = /^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$/i;

function problem(text) {
  let value = String(text || '').trim();
  const wrapped = value.match(/^\$\{([\s\S]*)\}$/);
  if (wrapped) value = wrapped[1].trim();
  if (!value) return 'timer: the timer has no expression';
  if (value.length >= 2 && value[0] === value[value.length - 1] && `'"`.includes(value[0])) value = value.slice(1, -1);
  if (!ISO_LITERAL.test(value)) return null;  // an expression: the server compiles it
  const upper = value.toUpperCase();
  if (upper.startsWith('R')) {
    const parts = upper.split('/');
    if (parts.length < 2 || parts.length > 3 || !/^R\d*$/.test(parts[0])) {
      return `timer: '${value}' is not an ISO 8601 cycle such as R/P3M or R4/P1W`;
    }
    if (!DURATION.test(parts[parts.length - 1])) {
      return `timer: '${parts[parts.length - 1]}' is not an ISO 8601 duration such as P7D or P3M`;
    }
    return null;
  }
  if (upper.startsWith('P') && !DURATION.test(upper)) {
    return `timer: '${value}' is not an ISO 8601 duration such as P7D or P3M`;
  }
  return null;
}

module.exports = function () {
  function check(node, reporter) {
    for (const definition of node.eventDefinitions || []) {
      if (!is(definition, 'bpmn:TimerEventDefinition')) continue;
      for (const part of ['timeDuration', 'timeCycle', 'timeDate']) {
        if (!definition[part]) continue;
        const message = problem(definition[part].body);
        if (message) reporter.report(node.id, message);
      }
    }
  }
  return { check };
};
module.exports.problem = problem;
