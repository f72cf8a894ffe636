/**
 * Builds the interactive page's script: src/view/app/main.ts and the d3 modules it uses, one
 * minified IIFE with no imports left, so the page needs no network (npm run build:view).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Paths from the package root, so this file works from src/view and compiled in dist/view alike.
export const VIEW_BUNDLE_DIR = fileURLToPath(new URL('../../build/view', import.meta.url));
const ENTRY = fileURLToPath(new URL('../../src/view/app/main.ts', import.meta.url));

export default defineConfig({
  logLevel: 'warn',
  build: {
    outDir: VIEW_BUNDLE_DIR,
    emptyOutDir: true,
    target: 'es2022',
    minify: true,
    lib: {
      entry: ENTRY,
      formats: ['iife'],
      name: 'physrView',
      fileName: () => 'physr-view.js',
    },
  },
});
