// Types for stryker.narrow.config.mjs, which test/mutation/main.ts imports for `reportName`.
export declare function reportName(tests: string): string;
declare const config: Record<string, unknown>;
export default config;
