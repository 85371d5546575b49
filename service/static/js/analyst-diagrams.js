// The analyst workspace's diagrams and decision tables: bpmn-js (navigated viewer) draws each
// [data-bpmn-url] container's diagram and marks, in colour AND in words (an overlay label on each):
//   data-added / data-removed / data-changed   element ids of a diff (green / red / amber)
//   data-error-element + data-error-text       where a case stopped, and why (red, "Error: ...")
//   data-current                               a case's open steps ("Now")
//   data-path                                  a rehearsal's elements run so far (blue, "Done" in the legend)
// dmn-js (viewer) draws each [data-dmn-url] container's decision tables, one after another.
// Data comes from data-attributes only; no inline script (CSP script-src 'self').
(function () {
  'use strict';

  if (!window.fetch) {
    return;
  }

  var LABELS = { added: 'Added', removed: 'Removed', changed: 'Changed' };

  function ids(container, name) {
    return (container.getAttribute(name) || '').split(/\s+/).filter(Boolean);
  }

  function fail(container, message) {
    container.classList.remove('sp-diagram--loading');
    var p = document.createElement('p');
    p.className = 'govuk-body sp-diagram__message';
    p.textContent = message;
    container.appendChild(p);
  }

  function load(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/xml' } }).then(function (response) {
      if (!response.ok) {
        throw new Error('The file could not be loaded (' + response.status + ').');
      }
      return response.text();
    });
  }

  function label(overlays, id, kind, text, top) {
    var span = document.createElement('span');
    span.className = 'sp-diff-label sp-diff-label--' + kind;
    span.textContent = text;
    overlays.add(id, 'sp-' + kind, { position: { top: top, left: 0 }, html: span });
  }

  // A big pathway fits only at an unreadable size: show what the page is about (the changes, the error, the
  // open steps) as large as fits, up to full size, in the middle.
  function focus(canvas, registry, container) {
    var MIN_READABLE_SCALE = 0.6;
    if (canvas.zoom() >= MIN_READABLE_SCALE) {
      return;
    }
    var wanted = ['data-error-element', 'data-added', 'data-removed', 'data-changed', 'data-current']
      .reduce(function (all, name) { return all.concat(ids(container, name)); }, [])
      .map(function (id) { return registry.get(id); })
      .filter(function (e) { return e && !e.waypoints && !/Lane|Participant|Process/.test(e.type); });
    if (!wanted.length) {
      return;
    }
    var box = wanted.reduce(function (b, e) {
      return { x1: Math.min(b.x1, e.x), y1: Math.min(b.y1, e.y),
               x2: Math.max(b.x2, e.x + e.width), y2: Math.max(b.y2, e.y + e.height) };
    }, { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity });
    var outer = canvas.viewbox().outer;
    var pad = 60;
    var scale = Math.min(1, outer.width / (box.x2 - box.x1 + 2 * pad), outer.height / (box.y2 - box.y1 + 2 * pad));
    if (scale < MIN_READABLE_SCALE) {  // the changes are far apart: the first one, readable
      var first = wanted[0];
      box = { x1: first.x, y1: first.y, x2: first.x + first.width, y2: first.y + first.height };
      scale = 0.9;
    }
    canvas.viewbox({
      x: (box.x1 + box.x2) / 2 - outer.width / (2 * scale),
      y: (box.y1 + box.y2) / 2 - outer.height / (2 * scale),
      width: outer.width / scale,
      height: outer.height / scale
    });
  }

  function bpmn(container) {
    if (typeof window.BpmnJS !== 'function') {
      return;
    }
    container.classList.add('sp-diagram--loading');
    var viewer = new window.BpmnJS({ container: container });
    load(container.getAttribute('data-bpmn-url'))
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var canvas = viewer.get('canvas');
        var registry = viewer.get('elementRegistry');
        var overlays = viewer.get('overlays');
        canvas.zoom('fit-viewport', 'auto');
        var marked = 0;
        ['added', 'removed', 'changed'].forEach(function (kind) {
          ids(container, 'data-' + kind).forEach(function (id) {
            var element = registry.get(id);
            if (!element || element.type === 'bpmn:Process' || element.type === 'bpmn:Collaboration') {
              return;
            }
            canvas.addMarker(id, 'sp-' + kind);
            label(overlays, id, kind, LABELS[kind], element.waypoints ? -10 : -22);
            marked += 1;
          });
        });
        // A rehearsal's path: the elements run so far, and the flows between two of them ("Done" says it in words
        // on the page's legend and in the list of steps below the diagram).
        var path = ids(container, 'data-path');
        if (path.length) {
          var ran = {};
          path.forEach(function (id) { ran[id] = true; });
          ids(container, 'data-current').forEach(function (id) { delete ran[id]; });  // open now: "Now", not done
          registry.getAll().forEach(function (element) {
            var done = ran[element.id] || (element.waypoints && element.source && element.target &&
              ran[element.source.id] && ran[element.target.id]);
            if (done && !/Lane|Participant|Process|Collaboration/.test(element.type)) {
              canvas.addMarker(element.id, 'sp-path');
            }
          });
        }
        ids(container, 'data-current').forEach(function (id) {
          if (registry.get(id)) {
            canvas.addMarker(id, 'sp-current');
            label(overlays, id, 'current', 'Now', -22);
          }
        });
        var failed = container.getAttribute('data-error-element');
        if (failed && registry.get(failed)) {
          canvas.addMarker(failed, 'sp-error');
          var text = container.getAttribute('data-error-text') || '';
          label(overlays, failed, 'error', 'Error: ' + (text.length > 120 ? text.slice(0, 117) + '...' : text),
            registry.get(failed).height ? registry.get(failed).height + 6 : 6);
        }
        focus(canvas, registry, container);
        container.setAttribute('data-marked', String(marked));
        container.classList.remove('sp-diagram--loading');
        container.classList.add('sp-diagram--ready');
      })
      .catch(function (error) {
        fail(container, (error && error.message) || 'The diagram could not be shown.');
      });
  }

  function dmn(container) {
    if (typeof window.DmnJS !== 'function') {
      return;
    }
    container.classList.add('sp-diagram--loading');
    load(container.getAttribute('data-dmn-url'))
      .then(function (xml) {
        // One viewer per decision table, so that every table shows (a viewer shows one view at a time).
        var probe = new window.DmnJS({ container: document.createElement('div') });
        return probe.importXML(xml).then(function () {
          var tables = probe.getViews().filter(function (view) { return view.type === 'decisionTable'; });
          probe.destroy();
          return tables.reduce(function (done, view) {
            return done.then(function () {
              var holder = document.createElement('div');
              holder.className = 'sp-decision-table';
              holder.setAttribute('data-decision', view.element.id);
              var heading = document.createElement('h4');
              heading.className = 'govuk-heading-s';
              heading.textContent = view.element.name || view.element.id;
              container.appendChild(heading);
              container.appendChild(holder);
              var viewer = new window.DmnJS({ container: holder });
              return viewer.importXML(xml).then(function () {
                var own = viewer.getViews().filter(function (v) { return v.element.id === view.element.id; })[0];
                return own ? viewer.open(own) : null;
              });
            });
          }, Promise.resolve());
        });
      })
      .then(function () {
        // dmn-js leaves the rule-number column's header empty: name it for screen readers.
        Array.prototype.forEach.call(container.querySelectorAll('th.index-column'), function (th) {
          if (!th.textContent.trim()) {
            var name = document.createElement('span');
            name.className = 'govuk-visually-hidden';
            name.textContent = 'Rule';
            th.appendChild(name);
          }
        });
        container.classList.remove('sp-diagram--loading');
        container.classList.add('sp-diagram--ready');
      })
      .catch(function (error) {
        fail(container, (error && error.message) || 'The decision tables could not be shown.');
      });
  }

  Array.prototype.forEach.call(document.querySelectorAll('[data-bpmn-url]'), bpmn);
  Array.prototype.forEach.call(document.querySelectorAll('[data-dmn-url]'), dmn);
})();
