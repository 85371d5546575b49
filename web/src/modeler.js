// The in-browser editor's bundle (built by build.mjs with esbuild into vendor/modeler/modeler.min.js):
// bpmn-js Modeler with the Camunda 7 ("Camunda Platform") properties panel and behaviours, as Camunda
// Modeler 5 offers them for Camunda 7 diagrams. Exposes window.StepModeler.create(canvas, panel).
import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
} from 'bpmn-js-properties-panel';
import CamundaBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

window.StepModeler = {
  create(canvas, panel) {
    return new BpmnModeler({
      container: canvas,
      propertiesPanel: { parent: panel },
      additionalModules: [
        BpmnPropertiesPanelModule,
        BpmnPropertiesProviderModule,
        CamundaPlatformPropertiesProviderModule,
        CamundaBehaviorsModule,
      ],
      moddleExtensions: { camunda: camundaModdle },
    });
  },
};
