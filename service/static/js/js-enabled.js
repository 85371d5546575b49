// Marks the page as having JavaScript, before it is drawn (GOV.UK Frontend's convention).
// A file, not an inline script: the content security policy allows scripts from this site only.
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');
