/** The scenario format as a JSON Schema (scenarios/schema.json), for editors' completion and checks. */
import { z } from 'zod';
import { scenarioDocumentSchema } from './scenario-schema.ts';

/** The JSON Schema of a scenario file as written (input side: sizes as strings or integers). */
export function scenarioJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(scenarioDocumentSchema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      // YAML integers are parsed as bigint; in JSON Schema they are plain integers.
      if (ctx.zodSchema._zod.def.type === 'bigint') {
        ctx.jsonSchema.type = 'integer';
        delete ctx.jsonSchema.format;
      }
    },
  });
}

/** The file's text: stable key order, two-space indent, trailing newline. */
export function scenarioJsonSchemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}
