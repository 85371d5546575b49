module.exports = [
  'gateway-conditions',
  'user-task-role',
  'immediate-risk',
  'end-outcome',
  'timer-shape',
  'script-python',
  'no-java',
];
