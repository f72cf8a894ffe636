/**
 * The self-contained interactive page: one HTML file holding the bundled script (build/view/
 * physr-view.js, made by `npm run build:view`, or on demand here when it is missing) and the JSON
 * document it draws. No network, no external asset: it can be attached to a bug report.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ViewDocument } from './document.ts';

const BUNDLE = fileURLToPath(new URL('../../build/view/physr-view.js', import.meta.url));
/** The build config beside this file: .ts in the repository, .js once compiled to dist/. */
const CONFIG = [new URL('./vite.config.ts', import.meta.url), new URL('./vite.config.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((path) => existsSync(path));

export const VIEW_CSS = `
:root{color-scheme:light}
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d5d9e2}
h3{font-size:1rem;margin:1rem 0 .3rem}h4{margin:.2rem 0}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}
thead th{background:#eef1f6}tbody tr:nth-child(even){background:#f8f9fb}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#5b6472}.ok,.passed{color:#16794c}.failed,.error{color:#b42318}
.summary{font-weight:600;font-size:1.1rem;padding:.7rem;border-radius:6px;background:#eef1f6}
.summary.pass{border-left:6px solid #16794c}.summary.fail{border-left:6px solid #b42318}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}svg text.scale-note,svg text.badges{fill:#5b6472;font-size:11px}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle;border-radius:2px}
.legend span{margin-right:.2rem}
details.scenario{border:1px solid #d5d9e2;border-radius:6px;padding:.4rem .8rem;margin:.6rem 0}
details.scenario>summary{cursor:pointer;font-weight:600;font-size:1.05rem}
.scroll{overflow-x:auto}
.timeline-list{font-size:13px;padding-left:1.2rem}.tag{color:#fff;border-radius:3px;padding:0 .3rem;font-size:11px}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.address-card{border:1px solid #d5d9e2;border-radius:6px;padding:.5rem;width:360px}
.lane{margin:.35rem 0}.lane-label{font-size:12px}
.topology .link{fill:none;stroke:#b6bcc6;stroke-width:1.5}.topology .link.path{stroke:#d97706;stroke-width:4}
.topology .node circle{fill:#fff;stroke:#5b6472;stroke-width:2}.topology .node.kind-endpoint circle{fill:#dbeafe}
.topology .node[role=button]{cursor:pointer}.topology .node:focus{outline:none}.topology .node:focus circle{stroke:#111;stroke-width:4}
.topology .node.on-path circle{stroke:#d97706;stroke-width:4}.topology .node.picked circle{fill:#d97706}
.verdict{border:2px solid #d97706;border-radius:6px;padding:.5rem .8rem;margin:.6rem 0;background:#fffbeb}.verdict p{margin:.2rem 0}
.p2p-matrix button{font:inherit;border:1px solid #c5cad3;border-radius:4px;background:#fff;padding:.1rem .4rem;cursor:pointer}
.p2p-matrix button:focus{outline:3px solid #d97706}.map-bus-address{background:#dcfce7!important}.map-through-host-bridge{background:#fef9c3!important}.map-not-supported{background:#fee2e2!important}
`;

/** The page's sources, where they exist (a checkout; from src/view or dist/view alike). */
const SOURCES = fileURLToPath(new URL('../../src/view/app/', import.meta.url));

/** True when the bundle is missing or older than a source of it (so an edit never shows stale). */
function bundleStale(): boolean {
  if (!existsSync(BUNDLE)) return true;
  if (!existsSync(join(SOURCES, 'main.ts'))) return false;
  const built = statSync(BUNDLE).mtimeMs;
  const view = dirname(SOURCES);
  const sources = [
    ...readdirSync(SOURCES).map((f) => join(SOURCES, f)),
    ...readdirSync(view)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(view, f)),
  ];
  return sources.some((f) => statSync(f).mtimeMs > built);
}

/** The bundled script, building it first when it is missing or stale (vite is a devDependency). */
export async function viewBundle(): Promise<string> {
  if (bundleStale()) await buildViewBundle();
  return readFileSync(BUNDLE, 'utf8');
}

/** Builds the bundle into a scratch folder and moves it into place, so concurrent builds are safe. */
export async function buildViewBundle(): Promise<void> {
  if (CONFIG === undefined)
    throw new Error('the view bundle is missing and no vite config is here to build it');
  const { build } = await import('vite');
  mkdirSync(dirname(BUNDLE), { recursive: true });
  const scratch = mkdtempSync(join(dirname(dirname(BUNDLE)), 'view-'));
  try {
    await build({ configFile: CONFIG, logLevel: 'error', build: { outDir: scratch, emptyOutDir: true } });
    renameSync(join(scratch, 'physr-view.js'), BUNDLE);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a script element: no "<" (so no "</script>"), bigints as "0x…". */
export function embeddedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? `0x${v.toString(16)}` : v,
  ).replace(/[<\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The page for a document (its sections: run, topology, p2pMatrix, trace), given the bundle. */
export function viewHtml(doc: ViewDocument, bundle: string): string {
  const title = doc.title ?? 'physr';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${escapeText(title)}</title>`,
    `<style>${VIEW_CSS}</style></head><body>`,
    `<main id="physr-root"><h1>${escapeText(title)}</h1><p>This report draws itself with JavaScript; the data is in the page as JSON.</p></main>`,
    `<script type="application/json" id="physr-data">${embeddedJson(doc)}</script>`,
    `<script>${bundle.replace(/<\/script/gi, '<\\/script')}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

/** One self-contained interactive HTML page for a document. */
export async function renderViewHtml(doc: ViewDocument): Promise<string> {
  return viewHtml(doc, await viewBundle());
}
