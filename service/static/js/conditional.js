// Conditional questions follow the worker's answers (progressive enhancement of form-js conditional.hide).
// The server renders each simple hide condition as data attributes on the question's wrapper
// (service/forms/conditions.py browser_condition):
//   data-hide-key  the answer the condition reads
//   data-hide-op   ne (=key != "value"), eq (=key = "value"), not (=not(key)), truthy (=key)
//   data-hide-value
// A condition whose answer is not a question of this form stays shown. Without JavaScript every question
// shows, and either way the server decides what is required and what is kept.
(function () {
  'use strict';

  function hiddenByParent(element) {
    var wrapper = element.closest('.sp-conditional');
    return wrapper !== null && wrapper.hidden;
  }

  // The answer as the server would read it: null when unanswered (or the question is hidden itself),
  // a string otherwise ("true"/"false" for a Yes/No or a single checkbox); undefined when it cannot tell.
  function answer(form, key) {
    var controls = Array.prototype.filter.call(form.elements, function (c) { return c.name === key; });
    if (controls.length === 0) { return undefined; }
    if (controls.some(hiddenByParent)) { return null; }
    var first = controls[0];
    if (first.type === 'radio') {
      var chosen = controls.filter(function (c) { return c.checked; })[0];
      return chosen ? chosen.value : null;
    }
    if (first.type === 'checkbox') {
      if (controls.length !== 1) { return undefined; }  // a checklist: a list, not read here
      return first.checked ? 'true' : 'false';
    }
    return first.value === '' ? null : first.value;
  }

  function hides(op, value, given) {
    if (given === undefined) { return false; }
    if (op === 'ne') { return given !== value; }  // FEEL: null != "x" is true
    if (op === 'eq') { return given === value; }
    if (op === 'not') { return given === 'false'; }  // not(null) is null: shown
    if (op === 'truthy') { return given === 'true'; }
    return false;
  }

  function update(form) {
    var wrappers = form.querySelectorAll('.sp-conditional[data-hide-key]');
    // a few passes, so a question shown or hidden by another conditional answer settles
    for (var pass = 0; pass < 4; pass += 1) {
      var changed = false;
      Array.prototype.forEach.call(wrappers, function (w) {
        var hide = hides(w.getAttribute('data-hide-op'), w.getAttribute('data-hide-value'),
          answer(form, w.getAttribute('data-hide-key')));
        if (w.hidden !== hide) { w.hidden = hide; changed = true; }
      });
      if (!changed) { break; }
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll('form'), function (form) {
    if (!form.querySelector('.sp-conditional[data-hide-key]')) { return; }
    update(form);
    form.addEventListener('change', function () { update(form); });
    form.addEventListener('input', function () { update(form); });
  });
})();
