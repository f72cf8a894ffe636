/** Registers every built-in step executor and platform (each piece adds one line as it lands). */
import { registerCoreSteps } from './core-steps.ts';

export function registerBuiltins(): void {
  registerCoreSteps();
}
