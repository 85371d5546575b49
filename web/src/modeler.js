// The in-browser editor's bundle (built by build.mjs with esbuild into vendor/modeler/modeler.min.js):
// bpmn-js Modeler with the Camunda 7 ("Camunda Platform") properties panel and behaviours, as Camunda
// Modeler 5 offers them for Camunda 7 diagrams, and linting with the service's own bpmnlint plug-in
// (web/bpmnlint-plugin-step-pathways: the deploy checks a diagram alone can show, as the analyst draws).
// Exposes window.StepModeler.create(canvas, panel).
import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
} from 'bpmn-js-properties-panel';
import CamundaBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';
import LintModule from 'bpmn-js-bpmnlint';
import StaticResolver from 'bpmnlint/lib/resolver/static-resolver';
import { cache, config } from '../bpmnlint-plugin-step-pathways/lib/static';

window.StepModeler = {
  create(canvas, panel) {
    return new BpmnModeler({
      container: canvas,
      propertiesPanel: { parent: panel },
      linting: { bpmnlint: { config, resolver: new StaticResolver(cache) }, active: true },
      additionalModules: [
        BpmnPropertiesPanelModule,
        BpmnPropertiesProviderModule,
        CamundaPlatformPropertiesProviderModule,
        CamundaBehaviorsModule,
        LintModule,
      ],
      moddleExtensions: { camunda: camundaModdle },
    });
  },
};
