// GOV.UK Frontend's components (error summary focus, character count, service navigation menu...).
import { initAll } from '/static/vendor/govuk/govuk-frontend.min.js';

initAll();
