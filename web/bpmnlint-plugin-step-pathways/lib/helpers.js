// Reading a diagram as the server reads it, whether the moddle knows the camunda: namespace (Camunda Modeler,
// the browser editor) or not (bpmnlint's command line: camunda attributes stay in $attrs).

function is(node, type) {
  return node && typeof node.$instanceOf === 'function' ? node.$instanceOf(type) : node && node.$type === type;
}

function local(type) {
  return String(type || '').split(':').pop().toLowerCase();
}

// camunda:<name> (or zeebe:<name>) as an attribute
function attr(node, name) {
  if (node[name] !== undefined && node[name] !== null && node[name] !== '') return node[name];
  const attrs = node.$attrs || {};
  for (const key of Object.keys(attrs)) {
    if (key.split(':').pop() === name && key.includes(':')) return attrs[key];
  }
  return undefined;
}

function children(element) {
  return [].concat(element.values || [], element.$children || []);
}

// The element's extension properties (camunda:property / zeebe:property), by name
function properties(node) {
  const found = {};
  const ext = node.extensionElements;
  if (!ext) return found;
  for (const holder of children(ext)) {
    if (local(holder.$type) !== 'properties') continue;
    for (const prop of children(holder)) {
      if (local(prop.$type) !== 'property') continue;
      const name = prop.name !== undefined ? prop.name : (prop.$attrs || {}).name;
      const value = prop.value !== undefined ? prop.value : (prop.$attrs || {}).value;
      if (name) found[name] = value;
    }
  }
  return found;
}

function lanesOf(process) {
  // flow node id -> lane name, nested lanes included
  const lanes = {};
  const walk = (laneSets) => {
    for (const set of laneSets || []) {
      for (const lane of set.lanes || []) {
        for (const ref of lane.flowNodeRef || []) lanes[ref.id] = lane.name || '';
        if (lane.childLaneSet) walk([lane.childLaneSet]);
      }
    }
  };
  walk(process.laneSets || (process.laneSet ? [process.laneSet] : []));
  return lanes;
}

function processOf(node) {
  let current = node.$parent;
  while (current && !is(current, 'bpmn:Process')) current = current.$parent;
  return current;
}

function label(node) {
  return node.name ? `'${node.name}' (${node.id})` : node.id;
}

const PERSON_STEPS = ['bpmn:UserTask', 'bpmn:ManualTask'];

function isPersonStep(node) {
  // bpmn:Task itself, not its subtypes (a script task is not a person's step)
  return PERSON_STEPS.some((t) => is(node, t)) || node.$type === 'bpmn:Task';
}

module.exports = { is, attr, properties, lanesOf, processOf, label, isPersonStep, children, local };
