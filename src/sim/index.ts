/** The scenario engine: YAML scenarios, step and platform registries, the engine, reports. */

export { registerBuiltins } from './builtins.ts';
export { CORE_ONLY_PLATFORM, registerCoreSteps } from './core-steps.ts';
export {
  DESIGN_NAMES,
  type DesignComparison,
  type DesignLeftOut,
  type DesignMapInput,
  type DesignName,
  type DesignOutcome,
  type DesignRatio,
  type DesignRun,
  type DesignSuiteTotals,
  designTotals,
  mapUnderDesigns,
  observeDesignRuns,
  runMapDesign,
} from './designs.ts';
export {
  checkCounters,
  checkPlatforms,
  type RunOptions,
  resolvePlatform,
  runScenario,
  runSuite,
} from './engine.ts';
export { scenarioJsonSchema, scenarioJsonSchemaText } from './json-schema.ts';
export { firstMismatch, formatPattern, type Pattern, parsePattern, patternBytes } from './pattern.ts';
export {
  type CountProgress,
  createCountProgress,
  createProgress,
  type Progress,
  type ProgressOptions,
} from './progress.ts';
export {
  listPlatforms,
  type PlatformFactory,
  type PlatformInstance,
  type PlatformLoader,
  type PlatformOptions,
  platformFactory,
  registeredStepKinds,
  registerPlatform,
  registerPlatformLoader,
  registerStep,
  type StepExecutor,
  type StepObservation,
  type StepResult,
  stepExecutor,
  unregisterPlatform,
  unregisterStep,
} from './registry.ts';
export { designComparisonHeading, designRunLine, renderDesignComparisonText } from './render-designs.ts';
export { renderRunHtml, runJson } from './render-html.ts';
export { renderJson, renderRunJson } from './render-json.ts';
export {
  ratioText,
  renderComparisonOnly,
  renderComparisonText,
  renderRunText,
  renderScenarioText,
  renderSummaryLine,
} from './render-text.ts';
export * from './report.ts';
export {
  BUILTIN_SCENARIO_DIR,
  builtinScenarioNames,
  isScenarioError,
  loadScenarioFile,
  loadScenarios,
  parseScenario,
  resolveScenarioTarget,
  type Scenario,
  ScenarioError,
  type ScenarioSource,
  scenarioError,
} from './scenario-loader.ts';
export {
  type Expectation,
  STEP_BODIES,
  STEP_KINDS,
  type Step,
  type StepBody,
  type StepKind,
  scenarioDocumentSchema,
  scenarioSchema,
} from './scenario-schema.ts';
export { formatFieldPath, sourceExcerpt } from './scenario-source.ts';
export { ObjectStore, type SimContext } from './sim-context.ts';
