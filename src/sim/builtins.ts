/** Registers every built-in step executor and platform (each piece adds one line as it lands). */
import { registerCoreSteps } from './core-steps.ts';
import { registerPlatforms } from './platforms.ts';
import { registerDmaSteps } from './steps-dma.ts';
import { registerDmabufSteps } from './steps-dmabuf.ts';
import { registerMemorySteps } from './steps-memory.ts';

export function registerBuiltins(): void {
  registerCoreSteps();
  registerPlatforms();
  registerMemorySteps();
  registerDmaSteps();
  registerDmabufSteps();
}
