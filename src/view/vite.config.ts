/**
 * Builds the interactive page's script: src/view/app/main.ts and the d3 modules it uses, one
 * minified IIFE with no imports left, so the page needs no network (npm run build:view).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export const VIEW_BUNDLE_DIR = fileURLToPath(new URL('../../build/view', import.meta.url));

export default defineConfig({
  logLevel: 'warn',
  build: {
    outDir: VIEW_BUNDLE_DIR,
    emptyOutDir: true,
    target: 'es2022',
    minify: true,
    lib: {
      entry: fileURLToPath(new URL('./app/main.ts', import.meta.url)),
      formats: ['iife'],
      name: 'physrView',
      fileName: () => 'physr-view.js',
    },
  },
});
