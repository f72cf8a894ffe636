/** The physr library: every piece's public face. */
export * from './core/index.ts';
