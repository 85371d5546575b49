// The analyst's editor: bpmn-js Modeler with the Camunda 7 properties panel (vendor/modeler, window.StepModeler),
// the server's deploy checks on demand (each problem a marker and label on its element and a line in the
// problems list), and saving as a new version. Data from data-attributes; no inline script (CSP).
(function () {
  'use strict';

  var root = document.getElementById('editor');
  if (!root || !window.StepModeler || !window.fetch) {
    return;
  }
  var canvasBox = document.getElementById('editor-canvas');
  var checkButton = document.getElementById('check-diagram');
  var saveButton = document.getElementById('save-diagram');
  var heading = document.getElementById('problems-heading');
  var summary = document.getElementById('problems-summary');
  var list = document.getElementById('problems-list');
  var modeler = window.StepModeler.create(canvasBox, document.getElementById('editor-panel'));
  root.stepModeler = modeler;  // for the browser tests (a property of the element, not a global)
  var marked = [];

  function post(url, xml) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': root.getAttribute('data-csrf') },
      body: JSON.stringify({ diagram: xml })
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    });
  }

  function clearProblems() {
    var canvas = modeler.get('canvas');
    var overlays = modeler.get('overlays');
    marked.forEach(function (id) { canvas.removeMarker(id, 'sp-problem'); });
    overlays.remove({ type: 'sp-problem' });
    marked = [];
    list.innerHTML = '';
  }

  function showProblems(problems, done) {
    clearProblems();
    var registry = modeler.get('elementRegistry');
    var canvas = modeler.get('canvas');
    var overlays = modeler.get('overlays');
    heading.hidden = false;
    if (!problems.length) {
      summary.textContent = done || 'No problems: the diagram passes every check a deployment runs.';
      return;
    }
    summary.textContent = problems.length === 1 ? 'There is 1 problem to fix.' : 'There are ' + problems.length + ' problems to fix.';
    problems.forEach(function (problem, index) {
      var item = document.createElement('li');
      item.className = 'sp-problem';
      var where = [problem.file, problem.element].filter(Boolean).join(', ');
      var element = problem.element && registry.get(problem.element);
      if (element) {
        canvas.addMarker(problem.element, 'sp-problem');
        marked.push(problem.element);
        var label = document.createElement('span');
        label.className = 'sp-diff-label sp-diff-label--error';
        label.textContent = 'Problem ' + (index + 1);
        overlays.add(problem.element, 'sp-problem', { position: { top: -22, left: 0 }, html: label });
        var show = document.createElement('button');
        show.type = 'button';
        show.className = 'sp-link-button govuk-link';
        show.textContent = 'Show ' + problem.element + ' on the diagram';
        show.addEventListener('click', function () {
          modeler.get('selection').select(element);
          canvas.scrollToElement(element);
          canvasBox.scrollIntoView({ block: 'center' });
        });
        item.appendChild(document.createTextNode(problem.message + (where ? ' (' + where + ') ' : ' ')));
        item.appendChild(show);
      } else {
        item.textContent = problem.message + (where ? ' (' + where + ')' : '');
      }
      list.appendChild(item);
    });
    if (marked.length) {  // the first problem, readable, in view
      canvas.zoom(1);
      canvas.scrollToElement(registry.get(marked[0]));
    }
  }

  function run(url, onOk) {
    checkButton.disabled = true;
    saveButton.disabled = true;
    summary.textContent = 'Checking...';
    heading.hidden = false;
    return modeler.saveXML({ format: true })
      .then(function (result) { return post(url, result.xml); })
      .then(function (answer) {
        if (answer.status >= 400 && !(answer.body && answer.body.problems)) {
          throw new Error((answer.body && answer.body.message) || 'The server refused (' + answer.status + ').');
        }
        onOk(answer.body);
      })
      .catch(function (error) {
        clearProblems();
        summary.textContent = (error && error.message) || 'The diagram could not be checked.';
      })
      .then(function () {
        checkButton.disabled = false;
        saveButton.disabled = false;
      });
  }

  checkButton.addEventListener('click', function () {
    run(root.getAttribute('data-check-url'), function (body) { showProblems(body.problems || []); });
  });
  saveButton.addEventListener('click', function () {
    run(root.getAttribute('data-save-url'), function (body) {
      if (body.saved && body.url) {
        window.location.assign(body.url);
        return;
      }
      showProblems(body.problems || [], body.message);
    });
  });

  fetch(root.getAttribute('data-bpmn-url'), { credentials: 'same-origin' })
    .then(function (response) {
      if (!response.ok) {
        throw new Error('The diagram could not be loaded (' + response.status + ').');
      }
      return response.text();
    })
    .then(function (xml) { return modeler.importXML(xml); })
    .then(function () {
      modeler.get('canvas').zoom('fit-viewport', 'auto');
      root.classList.add('sp-editor--ready');
      checkButton.disabled = false;
      saveButton.disabled = false;
    })
    .catch(function (error) {
      summary.textContent = (error && error.message) || 'The diagram could not be opened.';
    });
})();
