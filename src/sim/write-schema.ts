/** `npm run schema`: writes scenarios/schema.json from the zod schemas. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scenarioJsonSchemaText } from './json-schema.ts';
import { BUILTIN_SCENARIO_DIR } from './scenario-loader.ts';

const target = join(BUILTIN_SCENARIO_DIR, 'schema.json');
writeFileSync(target, scenarioJsonSchemaText());
process.stdout.write(`wrote ${target}\n`);
