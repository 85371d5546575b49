// The analyst's editor: bpmn-js Modeler with the Camunda 7 properties panel (vendor/modeler, window.StepModeler),
// the server's deploy checks on demand (each problem a marker and label on its element and a line in the
// problems list), and saving as a new version. The version's decision tables (dmn-js modeler, window.DmnJS) and
// forms (form-js editor, window.StepFormEditor) are edited beside the diagram: those changed are checked and saved
// with it. Data from data-attributes; no inline script (CSP).
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
  var files = [];  // { name, box, text(): Promise<string>, baseline }: the decision tables and forms

  function load(box) {
    return fetch(box.getAttribute('data-url'), { credentials: 'same-origin' }).then(function (response) {
      if (!response.ok) {
        throw new Error(box.getAttribute('data-file') + ' could not be loaded (' + response.status + ').');
      }
      return response.text();
    });
  }

  function text(box) {
    // a new file's blank content came with it from the server; a version's own file is fetched
    return box.stepText ? Promise.resolve(box.stepText) : load(box);
  }

  function dmnViews(editor, box) {
    // a button per decision (and the requirements diagram): the decision's table opens in the editor
    var bar = document.querySelector('[data-views-for="' + box.id + '"]');
    if (!bar) {
      return;
    }
    bar.innerHTML = '';
    editor.getViews().forEach(function (view) {
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'govuk-button govuk-button--secondary';
      var name = view.element && view.element.name;
      button.textContent = view.type === 'drd' ? 'Decision requirements' : 'Decision: ' + (name || view.element.id);
      button.setAttribute('aria-pressed', String(view === editor.getActiveView()));
      button.addEventListener('click', function () {
        editor.open(view).then(function () { dmnViews(editor, box); });
      });
      bar.appendChild(button);
    });
  }

  function nameRuleColumn(box) {
    // dmn-js leaves the rule-number column's header empty: name it for screen readers (as the viewer does)
    Array.prototype.forEach.call(box.querySelectorAll('th.index-column'), function (th) {
      if (!th.textContent.trim()) {
        var name = document.createElement('span');
        name.className = 'govuk-visually-hidden';
        name.textContent = 'Rule';
        th.appendChild(name);
      }
    });
  }

  function openFile(box) {
    var kind = box.getAttribute('data-kind');
    var entry = { name: box.getAttribute('data-file'), box: box, baseline: null };
    if (kind === 'dmn' && window.DmnJS) {
      var dmn = new window.DmnJS({ container: box });
      box.stepEditor = dmn;  // for the browser tests
      entry.text = function () { return dmn.saveXML({ format: true }).then(function (r) { return r.xml; }); };
      return text(box).then(function (xml) { return dmn.importXML(xml); }).then(function () {
        var table = dmn.getViews().filter(function (v) { return v.type === 'decisionTable'; })[0];
        return table ? dmn.open(table) : null;
      }).then(function () {
        dmnViews(dmn, box);
        nameRuleColumn(box);
        new MutationObserver(function () { nameRuleColumn(box); }).observe(box, { childList: true, subtree: true });
        return finish(entry);
      });
    }
    if (kind === 'form' && window.StepFormEditor) {
      var form = window.StepFormEditor.create(box);
      box.stepEditor = form;
      entry.text = function () { return Promise.resolve(JSON.stringify(form.saveSchema(), null, 2) + '\n'); };
      return text(box).then(function (json) { return form.importSchema(JSON.parse(json)); }).then(function () {
        return finish(entry);
      });
    }
    return Promise.resolve();
  }

  function finish(entry) {
    // what the editor writes for the file as opened: a file is sent only when what it writes differs
    return entry.text().then(function (text) {
      entry.baseline = entry.box.stepText ? null : text;  // a new file is always sent
      entry.box.classList.add('sp-file-editor--ready');
      if (document.body.contains(entry.box)) {  // not removed while it opened
        files.push(entry);
      }
    });
  }

  function changedFiles() {
    var changed = {};
    return Promise.all(files.map(function (entry) {
      return entry.text().then(function (text) {
        if (text !== entry.baseline) {
          changed[entry.name] = text;
        }
      });
    })).then(function () { return changed; });
  }

  function post(url, xml) {
    return changedFiles().then(function (changed) {
      return fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': root.getAttribute('data-csrf') },
        body: JSON.stringify({ diagram: xml, files: changed })
      });
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
      var inFile = problem.file && files.filter(function (f) { return f.name === problem.file; })[0];
      var element = !inFile && problem.element && registry.get(problem.element);
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
      } else if (inFile) {
        item.appendChild(document.createTextNode(problem.message + ' (' + where + ') '));
        var link = document.createElement('a');
        link.className = 'govuk-link';
        link.href = '#' + inFile.box.id;
        link.textContent = 'Go to ' + problem.file;
        item.appendChild(link);
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

  // "Add a form" / "Add a decision table": the server makes a blank file with the id typed (or says why not); it
  // opens in its own editor below and is checked and saved with the diagram, which must use it.
  var added = 0;
  function addFile(group) {
    var kind = group.getAttribute('data-add-kind');
    var input = group.querySelector('input');
    var button = group.querySelector('button');
    var error = group.querySelector('.govuk-error-message');
    function refuse(message) {
      error.textContent = message;
      error.hidden = false;
      error.style.display = '';
      group.classList.add('govuk-form-group--error');
      input.classList.add('govuk-input--error');
    }
    error.hidden = true;
    error.style.display = 'none';  // GOV.UK's error message is display: block, hidden or not
    group.classList.remove('govuk-form-group--error');
    input.classList.remove('govuk-input--error');
    button.disabled = true;
    return fetch(root.getAttribute('data-new-file-url'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': root.getAttribute('data-csrf') },
      body: JSON.stringify({ kind: kind, id: input.value.trim() })
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (answer) {
      if (answer.status >= 400) {
        refuse((answer.body && answer.body.message) || 'The server refused (' + answer.status + ').');
        return null;
      }
      var name = answer.body.name;
      if (files.some(function (f) { return f.name === name; }) || document.querySelector('[data-file="' + name + '"]')) {
        refuse(name + ' is already on this page: choose another id.');
        return null;
      }
      added += 1;
      var box = document.createElement('div');
      box.id = 'new-' + kind + '-' + added;
      box.className = 'sp-file-editor__canvas sp-file-editor__canvas--' + kind;
      box.setAttribute('data-kind', kind);
      box.setAttribute('data-file', name);
      box.setAttribute('data-new', 'true');
      box.stepText = answer.body.text;
      var section;
      if (kind === 'dmn') {
        section = document.createElement('section');
        section.className = 'sp-file-editor';
        var heading = document.createElement('h2');
        heading.className = 'govuk-heading-m';
        heading.id = box.id + '-heading';
        heading.textContent = 'New decision table: ' + name;
        section.setAttribute('aria-labelledby', heading.id);
        var views = document.createElement('div');
        views.className = 'sp-file-editor__views govuk-button-group';
        views.setAttribute('data-views-for', box.id);
        section.appendChild(heading);
        section.appendChild(views);
        section.appendChild(box);
        document.getElementById('new-tables').appendChild(section);
      } else {
        section = document.createElement('details');
        section.className = 'govuk-details sp-form-editor';
        section.open = true;
        var summaryLine = document.createElement('summary');
        summaryLine.className = 'govuk-details__summary';
        var summaryText = document.createElement('span');
        summaryText.className = 'govuk-details__summary-text';
        summaryText.textContent = 'New form: ' + name;
        summaryLine.appendChild(summaryText);
        var inner = document.createElement('div');
        inner.className = 'govuk-details__text';
        inner.appendChild(box);
        section.appendChild(summaryLine);
        section.appendChild(inner);
        document.getElementById('new-forms').appendChild(section);
      }
      (kind === 'dmn' ? section : inner).appendChild(removeButton(section, box, name));
      box.stepOpened = true;
      input.value = '';
      return openFile(box).then(function () {
        if (kind === 'dmn') {
          nameRuleColumn(box);
        }
        section.scrollIntoView({ block: 'start' });
      });
    }).catch(function (failed) {
      refuse((failed && failed.message) || 'The file could not be added.');
    }).then(function () {
      button.disabled = false;
    });
  }
  // A file added by mistake, or no longer wanted, goes again: it is neither checked nor saved.
  function removeButton(section, box, name) {
    var group = document.createElement('div');
    group.className = 'govuk-button-group';
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'govuk-button govuk-button--warning';
    button.textContent = 'Remove ' + name;
    button.addEventListener('click', function () {
      files = files.filter(function (entry) { return entry.box !== box; });
      if (box.stepEditor && box.stepEditor.destroy) {
        box.stepEditor.destroy();
      }
      section.parentNode.removeChild(section);
    });
    group.appendChild(button);
    return group;
  }

  var adders = Array.prototype.slice.call(document.querySelectorAll('[data-add-kind]'));
  adders.forEach(function (group) {
    group.querySelector('.govuk-error-message').style.display = 'none';
    group.querySelector('button').addEventListener('click', function () { addFile(group); });
    group.querySelector('input').addEventListener('keydown', function (event) {
      if (event.key === 'Enter') {
        event.preventDefault();
        addFile(group);
      }
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
      // decision tables open at once; a form when its details are first opened (a page of form editors is slow)
      var boxes = Array.prototype.slice.call(document.querySelectorAll('.sp-file-editor__canvas--dmn'));
      Array.prototype.forEach.call(document.querySelectorAll('.sp-file-editor__canvas--form'), function (box) {
        var details = box.closest('details');
        details.addEventListener('toggle', function () {
          if (details.open && !box.stepOpened) {
            box.stepOpened = true;
            openFile(box).catch(function (error) {
              box.textContent = (error && error.message) || 'The form could not be opened.';
            });
          }
        });
      });
      return Promise.all(boxes.map(openFile));
    })
    .then(function () {
      root.classList.add('sp-editor--ready');
      adders.forEach(function (group) { group.querySelector('button').disabled = false; });
      checkButton.disabled = false;
      saveButton.disabled = false;
    })
    .catch(function (error) {
      summary.textContent = (error && error.message) || 'The diagram could not be opened.';
    });
})();
