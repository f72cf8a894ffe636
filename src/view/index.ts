/**
 * The interactive view: a self-contained HTML page drawn in the browser from a JSON document. It
 * imports no model code; commands hand it the JSON they would print.
 */
export type * from './document.ts';
export { buildViewBundle, embeddedJson, renderViewHtml, VIEW_CSS, viewBundle, viewHtml } from './html.ts';
