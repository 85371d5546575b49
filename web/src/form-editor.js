// The form editor's bundle (built by build.mjs with esbuild into vendor/form-editor/form-editor.min.js): the
// form-js editor as Camunda Modeler 5 offers it for Camunda 7 forms (.form files, form-js schema JSON).
// Exposes window.StepFormEditor.create(container) -> a FormEditor (importSchema, saveSchema).
import { FormEditor } from '@bpmn-io/form-js-editor';

window.StepFormEditor = {
  create(container) {
    return new FormEditor({ container });
  },
};
