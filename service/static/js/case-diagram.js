// The case page's diagram: bpmn-js (navigated viewer) draws the case's own version of the pathway and
// marks the open steps. Data comes from data-attributes on #diagram; no inline script (CSP script-src 'self').
(function () {
  'use strict';

  var MIN_READABLE_SCALE = 0.6;
  var READABLE_SCALE = 0.9;
  var container = document.getElementById('diagram');
  if (!container || typeof window.BpmnJS !== 'function' || !window.fetch) {
    return;
  }
  var url = container.getAttribute('data-diagram-url');
  var current = (container.getAttribute('data-current') || '').split(/\s+/).filter(Boolean);

  function fail(message) {
    container.classList.remove('sp-diagram--loading');
    var p = document.createElement('p');
    p.className = 'govuk-body sp-diagram__message';
    p.textContent = message;
    container.appendChild(p);
  }

  container.classList.add('sp-diagram--loading');
  var viewer = new window.BpmnJS({ container: container });

  fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/xml' } })
    .then(function (response) {
      if (!response.ok) {
        throw new Error('The diagram could not be loaded (' + response.status + ').');
      }
      return response.text();
    })
    .then(function (xml) {
      return viewer.importXML(xml);
    })
    .then(function () {
      var canvas = viewer.get('canvas');
      var registry = viewer.get('elementRegistry');
      var overlays = viewer.get('overlays');
      canvas.zoom('fit-viewport', 'auto');
      var open = current.map(function (id) { return registry.get(id); }).filter(Boolean);
      if (open.length && canvas.zoom() < MIN_READABLE_SCALE) {
        // A big pathway fits only at an unreadable size: show the first open step, readable, in the middle.
        var outer = canvas.viewbox().outer;
        var step = open[0];
        canvas.viewbox({
          x: step.x + step.width / 2 - outer.width / (2 * READABLE_SCALE),
          y: step.y + step.height / 2 - outer.height / (2 * READABLE_SCALE),
          width: outer.width / READABLE_SCALE,
          height: outer.height / READABLE_SCALE
        });
      }
      current.forEach(function (id) {
        if (!registry.get(id)) {
          return;
        }
        canvas.addMarker(id, 'sp-current');
        // Words as well as colour: a "Now" label above each open step.
        var label = document.createElement('span');
        label.className = 'sp-current-label';
        label.textContent = 'Now';
        overlays.add(id, 'sp-current', { position: { top: -22, left: 0 }, html: label });
      });
      container.classList.remove('sp-diagram--loading');
      container.classList.add('sp-diagram--ready');
    })
    .catch(function (error) {
      fail((error && error.message) || 'The diagram could not be shown.');
    });
})();
